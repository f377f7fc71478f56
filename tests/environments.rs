//! ocwrap off the happy path (issue 13): without pidfds or close_range,
//! with a PID recycled under a teardown, with /proc absent or hiding
//! processes, as an ordinary user, and as PID 1 of a real OCI container.
//!
//! Every case checks the promise from outside, by PID, through the test's
//! own /proc and pidfds (whatever ocwrap was shown): every process of the
//! tree is gone, ocwrap's exit status is CMD's (0 for `stop` and `reap`),
//! its summary claims nothing it did not do, and bystanders are untouched.
//! Where ocwrap cannot see or cannot end a process, it must say so (exit
//! 125 and a message); a "0 survivors" while a descendant lives is the one
//! outcome that is never accepted.
//!
//! Sections (one module each):
//! - [`seccomp`]: the key cases of the supervisor and adversarial suites
//!   under a seccomp filter that refuses pidfd_open, pidfd_send_signal or
//!   close_range with ENOSYS or EPERM (and all of them at once), and
//!   `$(ocwrap spawn --detach ... 3>&1)` with close_range refused.
//! - [`pid_reuse`]: a dead grandchild's PID given to a bystander inside a
//!   PID namespace while the teardown runs.
//! - [`proc_hidden`]: /proc unmounted, another PID namespace's /proc, and
//!   /proc with hidepid=2 (with a setgid and a setuid descendant).
//! - [`ordinary_user`]: the core cases as an unprivileged user.
//! - [`container`]: ocwrap as PID 1 of a runc container with no image.
//! - [`rough_edges`]: a tmux server started with `opencode serve` under
//!   `reap`, an unreadable FOLDER and a failing fork as an ordinary user.
//!
//! The harness is in `tests/env/`, the fixtures in `tests/fixtures/`
//! (`env.py`, `seccomp-launch.c`, `fake-opencode`). Everything the suite
//! needs from the machine is installed by the harness when missing (as
//! root); a test that cannot run here fails and says why.

mod common;
mod env;

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::time::{Duration, Instant};

use env::seccomp::Filter;
use env::*;
use serde_json::Value;

/// Deadline for anything that should take a moment (fixtures starting,
/// reports appearing) on a loaded 2-core machine.
const T: Duration = Duration::from_secs(60);
/// The grace of cases whose tree ends on the stop signal. Long, so that a
/// case that waits it out can never pass by chance...
const LONG_GRACE: &str = "30s";
const LONG_KILL_TIMEOUT: &str = "20s";
/// ...because it must be over this soon after its tree was told to end.
const EARLY: Duration = Duration::from_secs(10);

/// `ocwrap ARGS`, through `filter`'s launcher when there is one.
fn launch(s: &Scene, filter: Option<&Filter>, args: &[&str]) -> Command {
    match filter {
        Some(f) => {
            let mut c = f.command(ocwrap_bin());
            c.args(args);
            scene_env(s, &mut c);
            c
        }
        None => ocwrap(s, args),
    }
}

/// Why a command that should be done is still running.
fn still(left: &[String]) -> String {
    if left.is_empty() {
        "every process it was to end was gone, yet it kept waiting (for its deadlines?)".into()
    } else {
        format!("it has not ended {left:?}")
    }
}

fn with_filter(filter: Option<&Filter>) -> String {
    match filter {
        Some(f) => format!(" (with {} refused: {})", f.deny.join(", "), f.errno),
        None => String::new(),
    }
}

/// What a supervised tree left behind.
struct Outcome {
    status: i32,
    /// From the moment CMD was told to exit until ocwrap exited.
    took: Duration,
    stderr: String,
    /// Members still alive once ocwrap exited.
    left: Vec<String>,
    members: Members,
    /// The `--report` document (None if ocwrap wrote none).
    report: Option<Value>,
}

/// `ocwrap --log-format json --report FILE --grace G --kill-timeout K --
/// env.py tree`: CMD starts the members `kinds`, reports them (the test
/// takes hold of each by pidfd), and when told exits with status 3. Fails
/// if ocwrap is not done within `limit` of that.
fn supervised_tree(
    s: &Scene,
    filter: Option<&Filter>,
    kinds: &str,
    grace: &str,
    kill_timeout: &str,
    limit: Duration,
) -> Outcome {
    let out = s.path("tree.json");
    let name = format!("env-member-{}", s.mark);
    let report = s.path("report.jsonl");
    let mut args = vec![
        "--log-format",
        "json",
        "--report",
        p(&report),
        "--grace",
        grace,
        "--kill-timeout",
        kill_timeout,
        "--",
    ];
    let py = env_py_args(&["tree", p(&out), &name, kinds, "go:3"]);
    args.extend(py.iter().map(String::as_str));
    let mut r = Running::start(launch(s, filter, &args));
    let doc = report_of(&mut r, &out, T);
    let members = Members::open(&doc, &name);
    assert!(
        members.missing().is_empty(),
        "fixture members {:?} were gone before the test took hold of them\n{}",
        members.missing(),
        r.output()
    );
    touch(&s.path("tree.json.go"));
    let start = Instant::now();
    let Some(status) = r.wait(limit) else {
        let left = members.alive();
        r.kill();
        panic!(
            "ocwrap{} was still running {limit:?} after CMD exited (grace {grace}, kill-timeout \
             {kill_timeout}): {}\n{}",
            with_filter(filter),
            still(&left),
            r.output()
        );
    };
    let took = start.elapsed();
    let stderr = r.stderr();
    no_panic(&stderr);
    let report = std::fs::read_to_string(&report)
        .ok()
        .and_then(|t| serde_json::from_str(t.lines().last()?).ok());
    Outcome {
        status: code(status),
        took,
        left: members.alive(),
        stderr,
        members,
        report,
    }
}

/// The tree is gone, the status is CMD's (3), the bystander lives, and
/// ocwrap claims exactly what happened: the members that ignore SIGTERM
/// were killed, the others ended on the stop signal, in the summary's
/// counts and, process by process, in the `--report` document (which
/// names no process but the members).
fn assert_clean(o: &Outcome, filter: Option<&Filter>, by: &Proc) {
    let ctx = || format!("ocwrap{}; stderr:\n{}", with_filter(filter), o.stderr);
    assert!(
        o.left.is_empty(),
        "members still alive after ocwrap exited with status {}: {:?}; {}",
        o.status,
        o.left,
        ctx()
    );
    assert_eq!(
        o.status,
        3,
        "ocwrap's exit status is not CMD's (3); {}",
        ctx()
    );
    assert!(by.alive(), "the bystander was signalled; {}", ctx());
    let expected: BTreeMap<i32, &str> = o
        .members
        .pids
        .iter()
        .map(|(kind, pid)| {
            (
                *pid,
                if kind == "ignore-term" {
                    "kill"
                } else {
                    "stop_signal"
                },
            )
        })
        .collect();
    let killed = expected.values().filter(|&&e| e == "kill").count();
    let done = event(&o.stderr, "teardown.completed")
        .unwrap_or_else(|| panic!("no teardown.completed event; {}", ctx()));
    assert_eq!(
        done["survivors"],
        serde_json::json!([]),
        "survivors listed; {}",
        ctx()
    );
    assert_eq!(
        (
            done["ended_on_stop_signal"].as_u64(),
            done["killed"].as_u64()
        ),
        (Some((expected.len() - killed) as u64), Some(killed as u64)),
        "the summary's (ended on the stop signal, killed) is not what happened to the members \
         {:?}; {}",
        o.members.pids,
        ctx()
    );
    let report = o
        .report
        .as_ref()
        .unwrap_or_else(|| panic!("no --report document; {}", ctx()));
    // CMD, which exited by itself before the teardown, has its own line
    // (ended by itself, never signalled): it is not one of the members.
    let claimed: BTreeMap<i32, &str> = report["processes"]
        .as_array()
        .unwrap_or_else(|| panic!("no processes in the report {report}"))
        .iter()
        .filter(|p| {
            let pid = p["pid"].as_i64().unwrap() as i32;
            expected.contains_key(&pid)
                || p["ended_by"] != "itself"
                || p["signals"].as_array().is_some_and(|s| !s.is_empty())
        })
        .map(|p| {
            (
                p["pid"].as_i64().unwrap() as i32,
                p["ended_by"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(
        claimed,
        expected,
        "the report's processes (pid: how it ended) are not what happened to the members {:?}; \
         report {report}; {}",
        o.members.pids,
        ctx()
    );
}

/// A setsid daemon (and a plain child, for company) are ended on the stop
/// signal, at once.
fn a_setsid_daemon(filter: Option<&Filter>) {
    let mut s = Scene::new("env-setsid");
    let by = bystander(&mut s, "env-bystander");
    let o = supervised_tree(
        &s,
        filter,
        "setsid,plain",
        LONG_GRACE,
        LONG_KILL_TIMEOUT,
        EARLY,
    );
    assert_clean(&o, filter, &by);
    assert!(o.took < EARLY, "took {:?}", o.took);
}

/// A double-forked daemon (re-parented to ocwrap) is ended on the stop
/// signal, at once.
fn a_double_fork(filter: Option<&Filter>) {
    let mut s = Scene::new("env-dfork");
    let by = bystander(&mut s, "env-bystander");
    let o = supervised_tree(
        &s,
        filter,
        "double-fork",
        LONG_GRACE,
        LONG_KILL_TIMEOUT,
        EARLY,
    );
    assert_clean(&o, filter, &by);
}

/// A child that ignores SIGTERM is killed once the 1s grace is over, and
/// the forced phase ends as soon as it is gone (not after the 20s
/// kill-timeout).
fn a_term_ignorer(filter: Option<&Filter>) {
    let mut s = Scene::new("env-ignorer");
    let by = bystander(&mut s, "env-bystander");
    let o = supervised_tree(
        &s,
        filter,
        "ignore-term,setsid",
        "1s",
        LONG_KILL_TIMEOUT,
        Duration::from_secs(1) + EARLY,
    );
    assert_clean(&o, filter, &by);
    assert!(
        o.took >= Duration::from_secs(1),
        "the TERM-ignorer was killed after {:?}, before the 1s grace; stderr:\n{}",
        o.took,
        o.stderr
    );
}

fn marker(s: &Scene) -> String {
    format!("{MARK_VAR}={}", s.mark)
}

/// `ocwrap spawn --detach` of fake opencode, then `ocwrap stop ID` (both
/// under `filter`): supervisor, opencode and opencode's children (a plain
/// one, a setsid one) are gone, at once, stop exits 0 and says so, the
/// record is removed, the bystander lives.
fn stop_of_a_detached_workspace(filter: Option<&Filter>) {
    let mut s = Scene::new("env-stop");
    let by = bystander(&mut s, "env-bystander");
    let folder = s.path("ws");
    std::fs::create_dir(&folder).unwrap();
    let oc_pids = s.path("opencode.json");
    let fake = fixture("fake-opencode");
    let mut c = launch(
        &s,
        filter,
        &[
            "spawn",
            "--detach",
            "--json",
            p(&folder),
            "--opencode",
            p(&fake),
            "--grace",
            LONG_GRACE,
            "--kill-timeout",
            LONG_KILL_TIMEOUT,
        ],
    );
    c.env("FAKE_OPENCODE_PIDS", &oc_pids);
    let mut r = Running::start(c);
    let st = r.finish(T, "ocwrap spawn --detach");
    assert_eq!(
        code(st),
        0,
        "spawn --detach{}\n{}",
        with_filter(filter),
        r.output()
    );
    let ws: Value = serde_json::from_str(r.stdout().trim())
        .unwrap_or_else(|e| panic!("spawn --json: {e}\n{}", r.output()));
    let id = ws["id"].as_str().unwrap().to_string();
    let oc = read_json(&oc_pids, T).expect("fake opencode never reported");
    let mut pids: Vec<(String, i32)> = vec![
        (
            "supervisor".into(),
            ws["pids"]["supervisor"].as_i64().unwrap() as i32,
        ),
        (
            "opencode".into(),
            ws["pids"]["opencode"].as_i64().unwrap() as i32,
        ),
    ];
    for (i, c) in oc["children"].as_array().unwrap().iter().enumerate() {
        pids.push((format!("opencode child {i}"), c.as_i64().unwrap() as i32));
    }
    let held: Vec<(String, Proc)> = pids
        .iter()
        .map(|(n, pid)| {
            let p = Proc::open_marked(*pid, &marker(&s))
                .unwrap_or_else(|| panic!("{n} ({pid}) is not running after spawn"));
            (format!("{n} {pid}"), p)
        })
        .collect();

    let start = Instant::now();
    let mut stop = Running::start(launch(
        &s,
        filter,
        &[
            "stop",
            &id,
            "--grace",
            LONG_GRACE,
            "--kill-timeout",
            LONG_KILL_TIMEOUT,
        ],
    ));
    let Some(st) = stop.wait(EARLY) else {
        let left: Vec<&str> = held
            .iter()
            .filter(|(_, p)| p.alive())
            .map(|(n, _)| n.as_str())
            .collect();
        stop.kill();
        let left: Vec<String> = left.into_iter().map(String::from).collect();
        panic!(
            "ocwrap stop{} was still running {EARLY:?} after it started (workspace grace \
             {LONG_GRACE}, kill-timeout {LONG_KILL_TIMEOUT}): {}\n{}",
            with_filter(filter),
            still(&left),
            stop.output()
        );
    };
    let took = start.elapsed();
    let err = stop.stderr();
    no_panic(&err);
    let left: Vec<&str> = held
        .iter()
        .filter(|(_, p)| !p.ends_within(Duration::from_millis(200)))
        .map(|(n, _)| n.as_str())
        .collect();
    assert!(
        left.is_empty(),
        "ocwrap stop{} exited {} but the workspace's processes {left:?} are alive\n{}",
        with_filter(filter),
        code(st),
        stop.output()
    );
    assert_eq!(
        code(st),
        0,
        "ocwrap stop{} did not exit 0 although the workspace is gone\n{}",
        with_filter(filter),
        stop.output()
    );
    assert!(err.contains("none left"), "stop did not say so: {err}");
    assert!(
        !s.state_dir().join(format!("{id}.json")).exists(),
        "the record was left behind"
    );
    assert!(took < EARLY, "stop took {took:?}");
    assert!(by.alive(), "the bystander was signalled");
}

/// A tree whose supervisor was SIGKILLed (CMD got its parent-death signal;
/// a plain child, a setsid daemon and a double fork are orphans of PID 1)
/// is ended by `ocwrap reap --match NAME` (under `filter`): at once, on the
/// stop signal, exit 0; an orphan of ours that does not match and the
/// bystander live.
fn reap_of_an_orphaned_tree(filter: Option<&Filter>) {
    let mut s = Scene::new("env-reap");
    let by = bystander(&mut s, "env-bystander");
    let out = s.path("tree.json");
    let name = format!("env-member-{}", s.mark);
    let mut args = vec![
        "--grace",
        LONG_GRACE,
        "--kill-timeout",
        LONG_KILL_TIMEOUT,
        "--",
    ];
    let py = env_py_args(&["tree", p(&out), &name, "plain,setsid,double-fork", "wait"]);
    args.extend(py.iter().map(String::as_str));
    let mut cmd = launch(&s, filter, &args);
    own_session(&mut cmd);
    let mut r = Running::start(cmd);
    let doc = report_of(&mut r, &out, T);
    let members = Members::open(&doc, &name);
    assert!(members.missing().is_empty(), "{}", r.output());
    let cmd_proc = Proc::open_marked(doc["cmd"].as_i64().unwrap() as i32, &marker(&s))
        .expect("CMD is not running");
    Proc::open(r.pid()).unwrap().signal(libc::SIGKILL);
    r.finish(T, "a SIGKILLed ocwrap");
    assert!(cmd_proc.ends_within(T), "CMD outlived a SIGKILLed ocwrap");
    let ppid = |pid: i32| stat_field(pid, 4).and_then(|f| f.parse::<i32>().ok());
    assert!(
        wait_until(T, || members.all().iter().all(|&m| ppid(m) == Some(1))),
        "members not re-parented to PID 1: {:?}",
        members
            .all()
            .iter()
            .map(|&m| (m, ppid(m)))
            .collect::<Vec<_>>()
    );
    assert_eq!(members.alive().len(), 3, "members ended before the reap");

    // An orphan of ours whose name does not match.
    let spare_out = s.path("spare.json");
    let spare_name = format!("env-spare-{}", s.mark);
    let mut c = Command::new(python());
    c.args([&env_py(), "orphans", p(&spare_out), &spare_name, "spare"]);
    scene_env(&s, &mut c);
    own_session(&mut c);
    let mut spare_run = Running::start(c);
    spare_run.finish(T, "fixture orphans");
    let spare = Members::open(&read_json(&spare_out, T).unwrap(), &spare_name);
    assert!(spare.missing().is_empty());

    let mut dry = Running::start(launch(
        &s,
        filter,
        &["reap", "--dry-run", "--json", "--match", &name],
    ));
    let st = dry.finish(T, "reap --dry-run");
    assert_eq!(code(st), 0, "{}", dry.output());
    let targets = reap_targets(&json_of(&dry));
    assert_eq!(
        targets,
        members.all(),
        "reap --dry-run{} targets",
        with_filter(filter)
    );

    let start = Instant::now();
    let mut reap = Running::start(launch(
        &s,
        filter,
        &[
            "reap",
            "--json",
            "--match",
            &name,
            "--grace",
            LONG_GRACE,
            "--kill-timeout",
            LONG_KILL_TIMEOUT,
        ],
    ));
    let Some(st) = reap.wait(EARLY) else {
        let left = members.alive();
        reap.kill();
        panic!(
            "ocwrap reap{} was still running {EARLY:?} after it started (grace {LONG_GRACE}, \
             kill-timeout {LONG_KILL_TIMEOUT}): {}\n{}",
            with_filter(filter),
            still(&left),
            reap.output()
        );
    };
    let took = start.elapsed();
    no_panic(&reap.stderr());
    let left = members.left_after(Duration::from_millis(200));
    assert!(
        left.is_empty(),
        "ocwrap reap{} exited {} but {left:?} live\n{}",
        with_filter(filter),
        code(st),
        reap.output()
    );
    assert_eq!(
        code(st),
        0,
        "reap{}\n{}",
        with_filter(filter),
        reap.output()
    );
    let doc = json_of(&reap);
    assert_eq!(
        (doc["ended_on_stop_signal"].as_u64(), doc["killed"].as_u64()),
        (Some(3), Some(0)),
        "reap{}'s summary (ended on the stop signal, killed) is not what happened: all three \
         ended on SIGTERM\n{}",
        with_filter(filter),
        reap.output()
    );
    assert_eq!(doc["survivors"], serde_json::json!([]), "{doc}");
    assert!(took < EARLY, "reap took {took:?}");
    assert!(
        spare.left_after(Duration::ZERO).len() == 1,
        "the non-matching orphan was ended"
    );
    assert!(by.alive(), "the bystander was signalled");
}

fn json_of(r: &Running) -> Value {
    serde_json::from_str(r.stdout().trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", r.output()))
}

/// The PIDs `reap --json` lists as targets (whole trees).
fn reap_targets(v: &Value) -> BTreeSet<i32> {
    v["targets"]
        .as_array()
        .unwrap_or_else(|| panic!("no targets in {v}"))
        .iter()
        .flat_map(|t| t["processes"].as_array().unwrap().clone())
        .map(|p| p.as_i64().unwrap() as i32)
        .collect()
}

// ---------------------------------------------------------------------
// Without pidfds or close_range
// ---------------------------------------------------------------------

mod seccomp {
    //! The key cases under a seccomp filter (`tests/fixtures/seccomp-launch.c`)
    //! that refuses system calls the way a kernel before 5.3/5.9 (ENOSYS)
    //! or a container's seccomp profile (EPERM or ENOSYS) does. The whole
    //! tree runs under the filter (it is inherited), ocwrap and fixtures
    //! alike; the test itself does not.

    use super::*;

    pub const ALL: &[&str] = &[
        "pidfd_open",
        "pidfd_send_signal",
        "pidfd_getfd",
        "waitid_pidfd",
        "close_range",
    ];

    macro_rules! key_cases {
        ($($mode:ident => $filter:expr;)*) => {$(
            mod $mode {
                use super::*;
                const FILTER: Option<Filter> = $filter;

                #[test]
                fn a_setsid_daemon_is_ended() {
                    a_setsid_daemon(FILTER.as_ref());
                }

                #[test]
                fn a_double_fork_is_ended() {
                    a_double_fork(FILTER.as_ref());
                }

                #[test]
                fn a_term_ignorer_is_killed_after_the_grace() {
                    a_term_ignorer(FILTER.as_ref());
                }

                #[test]
                fn stop_ends_a_detached_workspace() {
                    stop_of_a_detached_workspace(FILTER.as_ref());
                }

                #[test]
                fn reap_ends_an_orphaned_tree() {
                    reap_of_an_orphaned_tree(FILTER.as_ref());
                }
            }
        )*};
    }

    const fn refused(errno: &'static str, deny: &'static [&'static str]) -> Option<Filter> {
        Some(Filter { errno, deny })
    }

    key_cases! {
        // The same cases with nothing refused: the harness's own baseline.
        no_filter => None;
        pidfd_open_enosys => refused("ENOSYS", &["pidfd_open"]);
        pidfd_open_eperm => refused("EPERM", &["pidfd_open"]);
        pidfd_send_signal_enosys => refused("ENOSYS", &["pidfd_send_signal"]);
        pidfd_send_signal_eperm => refused("EPERM", &["pidfd_send_signal"]);
        close_range_enosys => refused("ENOSYS", &["close_range"]);
        all_enosys => refused("ENOSYS", ALL);
        all_eperm => refused("EPERM", ALL);
    }

    /// The launcher refuses exactly what it is told: without this, every
    /// case above could pass against a filter that does nothing.
    #[test]
    fn the_launcher_refuses_exactly_what_it_is_told() {
        let probe = r#"
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
nr = {"pidfd_open": 434, "pidfd_send_signal": 424, "close_range": 436, "pidfd_getfd": 438}
def call(name, *args):
    r = libc.syscall(nr[name], *args)
    return 0 if r >= 0 else ctypes.get_errno()
out = {"pidfd_open": call("pidfd_open", os.getpid(), 0)}
fd = os.pidfd_open(os.getpid()) if out["pidfd_open"] == 0 else -1
out["pidfd_send_signal"] = call("pidfd_send_signal", fd, 0, None, 0) if fd >= 0 else None
out["pidfd_getfd"] = call("pidfd_getfd", fd, 0, 0) if fd >= 0 else None
try:
    os.waitid(os.P_PIDFD, fd if fd >= 0 else 999, os.WEXITED | os.WNOHANG)
    out["waitid_pidfd"] = 0
except OSError as e:
    out["waitid_pidfd"] = e.errno
r, w = os.pipe()
out["close_range"] = call("close_range", 1000, 1001, 0)
out["kill"] = 0 if os.kill(os.getpid(), 0) is None else 1
out["fork"] = 0 if os.waitpid(os.fork() or os._exit(0), 0) else 1
print(json.dumps(out))
"#;
        let run = |filter: Option<Filter>| -> Value {
            let mut c = match filter {
                Some(f) => f.command(python()),
                None => Command::new(python()),
            };
            c.args(["-c", probe]);
            let mut r = Running::start(c);
            let st = r.finish(T, "the probe");
            assert!(st.success(), "{}", r.output());
            serde_json::from_str(r.stdout().trim()).unwrap()
        };
        let free = run(None);
        assert_eq!(
            free["pidfd_open"], 0,
            "pidfds do not work here at all: {free}"
        );
        assert_eq!(free["pidfd_send_signal"], 0, "{free}");
        assert_eq!(free["close_range"], 0, "{free}");
        for (errno, n) in [("ENOSYS", libc::ENOSYS), ("EPERM", libc::EPERM)] {
            let single: [(&str, &'static [&'static str]); 3] = [
                ("pidfd_open", &["pidfd_open"]),
                ("pidfd_send_signal", &["pidfd_send_signal"]),
                ("close_range", &["close_range"]),
            ];
            for (call, deny) in single {
                let got = run(Some(Filter { errno, deny }));
                assert_eq!(got[call], n, "{call} not refused with {errno}: {got}");
                for other in ["pidfd_open", "close_range", "kill", "fork"] {
                    if other != call {
                        assert_eq!(
                            got[other], 0,
                            "{other} refused by a filter for {call}: {got}"
                        );
                    }
                }
            }
            let got = run(Some(Filter { errno, deny: ALL }));
            for call in ["pidfd_open", "close_range", "waitid_pidfd"] {
                assert_eq!(got[call], n, "{call} not refused with {errno}: {got}");
            }
            assert_eq!(
                (got["kill"].clone(), got["fork"].clone()),
                (0.into(), 0.into())
            );
        }
        // pidfd_send_signal and pidfd_getfd, with pidfd_open allowed.
        let got = run(Some(Filter {
            errno: "EPERM",
            deny: &["pidfd_send_signal", "pidfd_getfd", "waitid_pidfd"],
        }));
        for call in ["pidfd_send_signal", "pidfd_getfd", "waitid_pidfd"] {
            assert_eq!(got[call], libc::EPERM, "{call}: {got}");
        }
    }

    /// `url=$(ocwrap spawn --detach FOLDER 3>&1)`: the caller's stdout pipe
    /// is also its fd 3. The detached supervisor must close it even when
    /// close_range is refused, or the caller's `$(...)` never sees EOF and
    /// hangs until the workspace stops.
    fn spawn_returns_with_an_inherited_descriptor(filter: Option<&Filter>) {
        let s = Scene::new("env-fd3");
        let folder = s.path("ws");
        std::fs::create_dir(&folder).unwrap();
        let fake = fixture("fake-opencode");
        let mut c = launch(
            &s,
            filter,
            &["spawn", "--detach", p(&folder), "--opencode", p(&fake)],
        );
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two descriptors, ours from now on.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both are new descriptors that nothing else owns.
        let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let w = wr.as_raw_fd();
        let err_file = std::fs::File::create(s.path("spawn.err")).unwrap();
        c.stdin(std::process::Stdio::null()).stderr(err_file);
        // SAFETY: dup2 is async-signal-safe; it clears close-on-exec on
        // the copies, so the child inherits fds 1 and 3 (both the pipe).
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut c, move || {
                if libc::dup2(w, 1) < 0 || libc::dup2(w, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = c.spawn().unwrap();
        drop(wr);
        // Read to EOF, as `$(...)` does, with a deadline.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        let eof = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break false;
            }
            let mut pfd = libc::pollfd {
                fd: rd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) };
            if n <= 0 {
                continue;
            }
            let mut buf = [0u8; 4096];
            // SAFETY: reading into a buffer we own, at most its length.
            let k = unsafe { libc::read(rd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if k <= 0 {
                break true;
            }
            got.extend_from_slice(&buf[..k as usize]);
        };
        let status = child.wait().unwrap();
        let text = String::from_utf8_lossy(&got).into_owned();
        let err = std::fs::read_to_string(s.path("spawn.err")).unwrap_or_default();
        // The workspace is still running: the EOF came from the caller
        // closing its end, not from the workspace ending.
        let mut ps = Running::start(ocwrap(&s, &["ps", "--json"]));
        ps.finish(T, "ocwrap ps");
        let rows = json_of(&ps);
        let mut stop = Running::start(ocwrap(&s, &["stop", "--all", "--grace", "2s"]));
        stop.finish(T, "ocwrap stop --all");
        assert!(
            eof,
            "`$(ocwrap spawn --detach ... 3>&1)`{} would hang: the caller's stdout saw no EOF \
             within 10s (spawn exited {status}, printed {text:?}); the detached supervisor kept \
             the caller's extra descriptor 3\n{err}",
            with_filter(filter)
        );
        assert!(status.success(), "spawn exited {status}\n{err}");
        assert!(
            text.starts_with("http://127.0.0.1:") && text.lines().count() == 1,
            "stdout is not exactly the URL: {text:?}\n{err}"
        );
        assert_eq!(rows[0]["state"], "running", "{rows}");
    }

    #[test]
    fn spawn_detach_closes_an_inherited_descriptor() {
        spawn_returns_with_an_inherited_descriptor(None);
    }

    #[test]
    fn spawn_detach_closes_an_inherited_descriptor_without_close_range_enosys() {
        spawn_returns_with_an_inherited_descriptor(Some(&Filter {
            errno: "ENOSYS",
            deny: &["close_range"],
        }));
    }

    #[test]
    fn spawn_detach_closes_an_inherited_descriptor_without_close_range_eperm() {
        spawn_returns_with_an_inherited_descriptor(Some(&Filter {
            errno: "EPERM",
            deny: &["close_range"],
        }));
    }

    #[test]
    fn spawn_detach_closes_an_inherited_descriptor_with_all_refused() {
        spawn_returns_with_an_inherited_descriptor(Some(&Filter {
            errno: "ENOSYS",
            deny: ALL,
        }));
    }
}

// ---------------------------------------------------------------------
// Forced PID reuse
// ---------------------------------------------------------------------

mod pid_reuse {
    //! Inside a private PID namespace whose init is fixture `reuse-init`:
    //! CMD's grandchild G dies of the stop signal and is reaped by its own
    //! parent P (P ignores SIGTERM, so the teardown goes on to its forced
    //! phase; ocwrap never reaps G). Before the grace ends, init steers
    //! `/proc/sys/kernel/ns_last_pid` and forks a bystander that gets G's
    //! PID: a child of init, never a descendant of ocwrap. Then the grace
    //! expires and ocwrap SIGKILLs what is left. The bystander must survive.

    use super::*;

    fn a_bystander_given_a_dead_grandchilds_pid(filter: Option<Filter>) {
        require_root("forced PID reuse in a PID namespace");
        install::namespace_tools();
        let s = Scene::new("env-reuse");
        let out = s.path("reuse.json");
        let mut cmd = Command::new("unshare");
        cmd.args(["--pid", "--fork", "--mount-proc", python(), &env_py()])
            .args(["reuse-init", p(&out), &s.mark]);
        if let Some(f) = &filter {
            cmd.args(f.argv());
        }
        cmd.arg(ocwrap_bin())
            .args(["--grace", "5s", "--kill-timeout", "5s"]);
        scene_env(&s, &mut cmd);
        let mut r = Running::start(cmd);
        let steered = report_of(&mut r, &s.path("reuse.json.bystander"), T);
        let argv0 = format!("env-reuse-bystander-{}", s.mark);
        // The bystander as the host sees it: its PID here, held by pidfd
        // (None: it was killed before the test could look).
        let host = with_env(&marker(&s))
            .into_iter()
            .filter_map(|pid| Proc::open_as(pid, &argv0))
            .next();
        if let Some(host) = &host {
            let nspid = status_field(host.pid, "NSpid").unwrap_or_default();
            assert_eq!(
                nspid
                    .split_whitespace()
                    .last()
                    .and_then(|p| p.parse::<i64>().ok()),
                steered["pid"].as_i64(),
                "host PID {} is not the bystander ({nspid})",
                host.pid
            );
        }
        assert_eq!(
            steered["p_alive"], true,
            "inconclusive: the forced phase had begun before the bystander got G's PID (the 5s \
             grace was too short on this machine): {steered}"
        );
        let result = report_of(&mut r, &out, T);
        let stderr = std::fs::read_to_string(s.path("reuse.json.stderr")).unwrap_or_default();
        let ctx = format!(
            "ocwrap{}: {result}\n--- ocwrap's stderr\n{stderr}",
            with_filter(filter.as_ref())
        );
        assert_eq!(result["error"], Value::Null, "{ctx}");
        let alive = host.as_ref().is_some_and(Proc::alive);
        touch(&s.path("reuse.json.done"));
        r.finish(T, "the PID namespace's init");
        assert!(
            alive && result["bystander_alive"] == true,
            "the bystander (PID {} in the namespace, {} here), a child of the namespace's init \
             and never a descendant of ocwrap, was killed: it had been given the PID of CMD's \
             grandchild after that one died and was reaped by its own parent, and ocwrap \
             signalled the PID without checking who has it now; {ctx}",
            steered["pid"],
            host.as_ref().map_or("gone".into(), |h| h.pid.to_string())
        );
        assert_eq!(
            result["status"], 0,
            "ocwrap's exit status is not CMD's (0); {ctx}"
        );
        // G ended on the stop signal, P (which ignores it) was killed.
        assert!(
            stderr.contains("1 ended on the stop signal, 1 killed, 0 survivors"),
            "the summary is not what happened; {ctx}"
        );
        no_panic(&stderr);
    }

    #[test]
    fn a_bystander_given_a_dead_grandchilds_pid_survives_with_pidfds() {
        a_bystander_given_a_dead_grandchilds_pid(None);
    }

    #[test]
    fn a_bystander_given_a_dead_grandchilds_pid_survives_without_pidfd_open_enosys() {
        a_bystander_given_a_dead_grandchilds_pid(Some(Filter {
            errno: "ENOSYS",
            deny: &["pidfd_open"],
        }));
    }

    #[test]
    fn a_bystander_given_a_dead_grandchilds_pid_survives_without_pidfd_open_eperm() {
        a_bystander_given_a_dead_grandchilds_pid(Some(Filter {
            errno: "EPERM",
            deny: &["pidfd_open"],
        }));
    }

    #[test]
    fn a_bystander_given_a_dead_grandchilds_pid_survives_with_all_pidfd_calls_refused() {
        a_bystander_given_a_dead_grandchilds_pid(Some(Filter {
            errno: "ENOSYS",
            deny: seccomp::ALL,
        }));
    }
}

// ---------------------------------------------------------------------
// /proc absent or hiding processes
// ---------------------------------------------------------------------

mod proc_hidden {
    //! ocwrap in a private mount namespace where /proc is unmounted, shows
    //! another PID namespace, or hides processes (hidepid=2; ocwrap then
    //! runs as the ordinary user, since root sees through hidepid). The
    //! test looks from outside, with its own /proc. Either the tree is
    //! ended (exit status CMD's, 5), or ocwrap reports that it could not
    //! (exit 125 and an error); "0 survivors" while a member lives is a
    //! false success.

    use super::*;

    /// How ocwrap is started: the program and arguments before ocwrap's.
    enum ProcView {
        Unmounted,
        Hidepid2 {
            uid: u32,
            gid: u32,
        },
        /// `nsenter --mount` into the mount namespace of a holder whose
        /// /proc is its own PID namespace's.
        OtherNamespace {
            holder: i32,
        },
    }

    fn prefix(how: &ProcView) -> Command {
        let mount = |script: &str| {
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
                .arg(format!("{script} || exit 90; exec \"$@\""))
                .arg("sh");
            c
        };
        match how {
            ProcView::Unmounted => mount("umount -l /proc"),
            ProcView::Hidepid2 { uid, gid } => {
                let mut c = mount("mount -t proc -o hidepid=2 proc /proc");
                c.args([
                    "setpriv",
                    &format!("--reuid={uid}"),
                    &format!("--regid={gid}"),
                ])
                .args(["--init-groups", "--"]);
                c
            }
            ProcView::OtherNamespace { holder } => {
                let mut c = Command::new("nsenter");
                c.args(["--target", &holder.to_string(), "--mount", "--"]);
                c
            }
        }
    }

    /// Runs `ocwrap --grace 2s --kill-timeout 2s -- env.py tree ... go:5`
    /// behind `how`; returns (exit status, stderr, members left, members).
    fn hidden_tree(s: &Scene, how: &ProcView, kinds: &str) -> (i32, String, Vec<String>, Members) {
        let out = s.path("tree.json");
        let name = format!("env-member-{}", s.mark);
        let mut c = prefix(how);
        c.arg(ocwrap_bin())
            .args(["--grace", "2s", "--kill-timeout", "2s", "--"])
            .args(env_py_args(&["tree", p(&out), &name, kinds, "go:5"]));
        scene_env(s, &mut c);
        let mut r = Running::start(c);
        let doc = report_of(&mut r, &out, T);
        let members = Members::open(&doc, &name);
        assert!(members.missing().is_empty(), "{}", r.output());
        touch(&s.path("tree.json.go"));
        let st = r.finish(Duration::from_secs(4) + EARLY, "ocwrap");
        let err = r.stderr();
        no_panic(&err);
        assert_ne!(code(st), 90, "could not set up /proc: {err}");
        (code(st), err, members.alive(), members)
    }

    /// Ended, or a reported failure; never a false success.
    fn ended_or_reported(what: &str, status: i32, stderr: &str, left: &[String]) {
        if left.is_empty() {
            assert_eq!(
                status, 5,
                "{what}: the tree is gone but the status is not CMD's:\n{stderr}"
            );
            return;
        }
        assert!(
            status == 125 && !stderr.contains("0 survivors") && stderr.contains("error"),
            "{what}: ocwrap exited {status} while members {left:?} were alive: a false success \
             (it must end them, or exit 125 saying it could not)\n{stderr}"
        );
    }

    #[test]
    fn proc_unmounted() {
        require_root("unmounting /proc in a mount namespace");
        install::namespace_tools();
        let mut s = Scene::new("env-noproc");
        let by = bystander(&mut s, "env-bystander");
        let (st, err, left, _m) = hidden_tree(&s, &ProcView::Unmounted, "setsid,double-fork");
        ended_or_reported("/proc unmounted", st, &err, &left);
        assert!(by.alive());
    }

    #[test]
    fn proc_of_another_pid_namespace() {
        require_root("a PID namespace");
        install::namespace_tools();
        let mut s = Scene::new("env-otherproc");
        let by = bystander(&mut s, "env-bystander");
        let hold = s.path("hold.json");
        let mut c = Command::new("unshare");
        c.args([
            "--pid",
            "--fork",
            "--mount",
            "--propagation",
            "private",
            "--mount-proc",
        ])
        .args(env_py_args(&["hold", p(&hold)]));
        scene_env(&s, &mut c);
        let mut holder_run = Running::start(c);
        report_of(&mut holder_run, &hold, T);
        let children =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", holder_run.pid()))
                .unwrap();
        let holder: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
        let (st, err, left, _m) = hidden_tree(
            &s,
            &ProcView::OtherNamespace { holder },
            "setsid,double-fork",
        );
        touch(&s.path("hold.json.done"));
        holder_run.finish(T, "the namespace holder");
        ended_or_reported("/proc of another PID namespace", st, &err, &left);
        assert!(by.alive());
    }

    fn hidepid(kinds: &dyn Fn(&user::Kit) -> String, check: &dyn Fn(&Members)) {
        require_root("mounting /proc with hidepid=2");
        install::namespace_tools();
        let (uid, gid) = install::ordinary_user();
        let kit = user::kit();
        let mut s = Scene::new("env-hidepid");
        std::os::unix::fs::chown(&s.dir, Some(uid), Some(gid)).unwrap();
        let by = bystander(&mut s, "env-bystander");
        let how = ProcView::Hidepid2 { uid, gid };
        // The ordinary user's copies of the binary and the fixtures.
        let mut c = prefix(&how);
        c.arg(&kit.ocwrap)
            .args(["--grace", "2s", "--kill-timeout", "2s", "--"]);
        let out = s.path("tree.json");
        let name = format!("env-member-{}", s.mark);
        let kinds = kinds(kit);
        c.args([
            python(),
            p(&kit.fixtures.join("env.py")),
            "tree",
            p(&out),
            &name,
            &kinds,
            "go:5",
        ]);
        scene_env(&s, &mut c);
        let mut r = Running::start(c);
        let doc = report_of(&mut r, &out, T);
        let members = Members::open(&doc, &name);
        assert!(members.missing().is_empty(), "{}", r.output());
        check(&members);
        touch(&s.path("tree.json.go"));
        let st = r.finish(Duration::from_secs(4) + EARLY, "ocwrap");
        let err = r.stderr();
        no_panic(&err);
        assert_ne!(code(st), 90, "could not mount /proc with hidepid=2: {err}");
        ended_or_reported("/proc with hidepid=2", code(st), &err, &members.alive());
        assert!(by.alive());
    }

    #[test]
    fn hidepid_2_own_tree() {
        hidepid(&|_| "setsid,double-fork".into(), &|_| {});
    }

    /// A double-forked setgid `sleep` (another group: hidden from its
    /// ocwrap by hidepid=2, though ocwrap may signal it).
    #[test]
    fn hidepid_2_with_a_setgid_descendant() {
        let nogroup = install::group("nogroup").expect("no group nogroup");
        hidepid(
            &|kit| {
                let prog = kit.sleep_copy("sleep-setgid-nogroup", 0, nogroup, 0o2755);
                format!("setsid,program-daemon={}", prog.display())
            },
            &|m| {
                let (_, (rgid, egid)) = ids(m.pid("program-daemon")).unwrap();
                assert!(
                    rgid != egid && egid == nogroup,
                    "the setgid copy of sleep did not take effect (gid {rgid}, egid {egid}): is \
                     /tmp mounted nosuid?"
                );
            },
        );
    }

    /// A double-forked setuid-nobody `sleep` (another user: hidden, and
    /// ocwrap must not claim it ended it).
    #[test]
    fn hidepid_2_with_another_users_descendant() {
        hidepid(
            &|kit| {
                let prog = kit.sleep_copy("sleep-setuid-nobody", 65534, 65534, 0o4755);
                format!("setsid,program-daemon={}", prog.display())
            },
            &|m| {
                let ((ruid, euid), _) = ids(m.pid("program-daemon")).unwrap();
                assert!(
                    ruid != euid && euid == 65534,
                    "the setuid copy of sleep did not take effect (uid {ruid}, euid {euid}): is \
                     /tmp mounted nosuid?"
                );
            },
        );
    }

    /// `ocwrap reap` as the ordinary user under hidepid=2 finds and ends the
    /// user's own orphans (PID 1's children file is hidden from it).
    #[test]
    fn hidepid_2_reap_ends_the_users_own_orphans() {
        require_root("mounting /proc with hidepid=2");
        install::namespace_tools();
        let (uid, gid) = install::ordinary_user();
        let kit = user::kit();
        let mut s = Scene::new("env-hidereap");
        std::os::unix::fs::chown(&s.dir, Some(uid), Some(gid)).unwrap();
        let by = bystander(&mut s, "env-bystander");
        let name = format!("env-member-{}", s.mark);
        let out = s.path("orphans.json");
        let env_py = kit.fixtures.join("env.py");
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--init-groups",
            "--",
        ])
        .args([python(), p(&env_py), "orphans", p(&out), &name, "a,b,c"]);
        scene_env(&s, &mut c);
        own_session(&mut c);
        Running::start(c).finish(T, "fixture orphans");
        let members = Members::open(&read_json(&out, T).unwrap(), &name);
        assert!(members.missing().is_empty());
        assert!(members.all().iter().all(|&m| ids(m).unwrap().0.0 == uid));
        let mut c = prefix(&ProcView::Hidepid2 { uid, gid });
        c.arg(&kit.ocwrap).args([
            "reap",
            "--json",
            "--match",
            &name,
            "--grace",
            "2s",
            "--kill-timeout",
            "2s",
        ]);
        scene_env(&s, &mut c);
        let mut r = Running::start(c);
        let st = r.finish(Duration::from_secs(4) + EARLY, "ocwrap reap");
        no_panic(&r.stderr());
        let left = members.left_after(Duration::from_millis(200));
        assert!(
            left.is_empty(),
            "ocwrap reap under hidepid=2 (as {}) exited {} and left the user's own orphans {left:?} \
             running\n{}",
            install::USER,
            code(st),
            r.output()
        );
        assert_eq!(code(st), 0, "{}", r.output());
        assert!(by.alive());
    }
}

// ---------------------------------------------------------------------
// As an ordinary user
// ---------------------------------------------------------------------

mod ordinary_user {
    //! The core cases re-run as the ordinary user (see `tests/env/user.rs`):
    //! as root, each test runs its own body again in this test binary as
    //! user `ocwrap-ci`.

    use super::*;

    user_test!(
        a_tree_with_a_setsid_daemon_and_a_double_fork_is_ended,
        |_| {
            let mut s = Scene::new("env-user-tree");
            let by = bystander(&mut s, "env-bystander");
            let o = supervised_tree(
                &s,
                None,
                "plain,setsid,double-fork",
                LONG_GRACE,
                LONG_KILL_TIMEOUT,
                EARLY,
            );
            assert_clean(&o, None, &by);
        }
    );

    user_test!(a_term_ignorer_is_killed_after_the_grace, |_| {
        a_term_ignorer(None)
    });

    user_test!(stop_ends_a_detached_workspace, |_| {
        stop_of_a_detached_workspace(None)
    });

    user_test!(reap_ends_an_orphaned_tree, |_| reap_of_an_orphaned_tree(
        None
    ));

    /// Orphans that match reap's pattern but are not the user's: root's and
    /// nobody's (the kernel would refuse those signals anyway: what is
    /// checked is that reap does not even list them), and two the user
    /// started from setuid copies of `sleep` (root's and nobody's, with the
    /// user as their real uid: the kernel *would* let the user signal
    /// them). Only the user's own orphan is reaped.
    fn prepare() -> (Value, impl FnOnce()) {
        require_root("processes of root and of nobody");
        let kit = user::kit();
        let s = Scene::new("env-user-foreign");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&s.dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let name = format!("env-member-{}", s.mark);
        let start = |who: Option<u32>, key: &str| -> Members {
            let out = s.path(&format!("{key}.json"));
            let mut c = match who {
                Some(uid) => {
                    let mut c = Command::new("setpriv");
                    c.args([&format!("--reuid={uid}"), &format!("--regid={uid}")])
                        .args(["--clear-groups", "--"]);
                    c.arg(python());
                    c
                }
                None => Command::new(python()),
            };
            c.args([
                p(&kit.fixtures.join("env.py")),
                "orphans",
                p(&out),
                &name,
                key,
            ]);
            scene_env(&s, &mut c);
            own_session(&mut c);
            Running::start(c).finish(T, "fixture orphans");
            let m = Members::open(&read_json(&out, T).unwrap(), &name);
            assert!(m.missing().is_empty());
            m
        };
        let root = start(None, "root");
        let nobody = start(Some(65534), "nobody");
        let data = serde_json::json!({
            "name": name,
            "root": root.pid("root"),
            "nobody": nobody.pid("nobody"),
            "suid_root": kit.sleep_copy("sleep-setuid-root", 0, 0, 0o4755),
            "suid_nobody": kit.sleep_copy("sleep-setuid-nobody", 65534, 65534, 0o4755),
        });
        let after = move || {
            let left = [root.alive(), nobody.alive()].concat();
            assert_eq!(
                left.len(),
                2,
                "reap as the ordinary user ended root's or nobody's orphan: left {left:?}"
            );
            drop(s);
        };
        (data, after)
    }

    user_test!(
        reap_never_signals_a_root_owned_or_another_users_process,
        prepare,
        |data: &Value| {
            let s = Scene::new("env-user-reap");
            let name = data["name"].as_str().unwrap();
            let out = s.path("mine.json");
            let kinds = format!(
                "mine,suid-root={},suid-nobody={}",
                data["suid_root"].as_str().unwrap(),
                data["suid_nobody"].as_str().unwrap()
            );
            let mut c = Command::new(python());
            c.args([&env_py(), "orphans", p(&out), name, &kinds]);
            scene_env(&s, &mut c);
            own_session(&mut c);
            Running::start(c).finish(T, "fixture orphans");
            let mine = Members::open(&read_json(&out, T).unwrap(), name);
            assert!(mine.missing().is_empty());
            for (key, euid) in [("suid-root", 0), ("suid-nobody", 65534)] {
                let ((_, e), _) = ids(mine.pid(key)).unwrap();
                assert_eq!(
                    e, euid,
                    "the setuid copy for {key} did not take effect (nosuid?)"
                );
            }
            let foreign: Vec<Proc> = ["root", "nobody"]
                .iter()
                .map(|k| {
                    let pid = data[k].as_i64().unwrap() as i32;
                    Proc::open_as(pid, name).unwrap_or_else(|| panic!("{k}'s orphan is gone"))
                })
                .collect();
            let mut dry = Running::start(ocwrap(
                &s,
                &["reap", "--dry-run", "--json", "--match", name],
            ));
            dry.finish(T, "reap --dry-run");
            let targets = reap_targets(&json_of(&dry));
            assert_eq!(
                targets,
                BTreeSet::from([mine.pid("mine")]),
                "reap --dry-run as an ordinary user lists processes that are not the user's \
                 (root's {}, nobody's {}, setuid root {}, setuid nobody {})\n{}",
                data["root"],
                data["nobody"],
                mine.pid("suid-root"),
                mine.pid("suid-nobody"),
                dry.output()
            );
            let mut reap = Running::start(ocwrap(
                &s,
                &[
                    "reap",
                    "--json",
                    "--match",
                    name,
                    "--grace",
                    "2s",
                    "--kill-timeout",
                    "2s",
                ],
            ));
            let st = reap.finish(T, "reap");
            assert_eq!(code(st), 0, "{}", reap.output());
            let held_mine = Proc::open_as(mine.pid("mine"), name);
            assert!(
                held_mine.is_none_or(|p| p.ends_within(Duration::from_secs(1))),
                "the user's own orphan survived the reap\n{}",
                reap.output()
            );
            let alive = mine.alive();
            for key in ["suid-root", "suid-nobody"] {
                assert!(
                    alive.iter().any(|a| a.starts_with(&format!("{key} "))),
                    "reap as an ordinary user signalled its {key} orphan (another user's \
                     process that the kernel lets the user signal)\n{}",
                    reap.output()
                );
            }
            for (k, p) in ["root", "nobody"].iter().zip(&foreign) {
                assert!(p.alive(), "reap as an ordinary user ended {k}'s orphan");
            }
        }
    );
}

// ---------------------------------------------------------------------
// PID 1 of a real container
// ---------------------------------------------------------------------

mod container {
    //! ocwrap as PID 1 of a runc container with no image (see
    //! `tests/env/runc.rs`). CMD (fixture `container-cmd`) starts signal
    //! recorders: a plain child and two setsid daemons. When PID 1 exits
    //! the kernel kills whatever is left in the namespace, so "everything
    //! ended" is checked where it means something: every recorder wrote
    //! down the stop signal it got from ocwrap before it exited.

    use super::*;
    use env::runc::{Container, namespace_processes};

    const RECORDERS: [&str; 3] = ["plain", "daemon1", "daemon2"];

    fn container(s: &Scene, name: &str, then: &str, status: &str) -> Container {
        require_root("runc");
        let mut c = Container::new(
            s,
            name,
            &[
                "/ocwrap",
                "--grace",
                "10s",
                "--kill-timeout",
                "5s",
                "--",
                "/usr/bin/python3",
                "/fixtures/env.py",
                "container-cmd",
                "/out",
                then,
                status,
            ],
        );
        c.start();
        c
    }

    fn signals(c: &Container, who: &str) -> String {
        std::fs::read_to_string(c.out(&format!("{who}.signals"))).unwrap_or_default()
    }

    /// Every recorder got SIGTERM from ocwrap; nothing is left in the
    /// namespace; ocwrap's summary has no survivors.
    fn assert_ended(c: &mut Container, init: i32, expected: i32) {
        let out = c.running().output();
        for who in RECORDERS {
            assert_eq!(
                signals(c, who),
                "SIGTERM\n",
                "recorder {who} did not get exactly the stop signal from ocwrap before the \
                 container ended (it was ended by the kernel when PID 1 exited, or signalled \
                 twice)\n{out}"
            );
        }
        let left = namespace_processes(init);
        assert!(
            left.is_empty(),
            "still in the container's namespace: {left:?}"
        );
        let st = c.running().status.unwrap();
        assert_eq!(
            code(st),
            expected,
            "the container (ocwrap) did not exit with CMD's status\n{out}"
        );
        assert!(c.running().stderr().contains(" 0 survivors"), "{out}");
        no_panic(&out);
    }

    fn stop_by(signal: &str) {
        let s = Scene::new("env-runc-stop");
        let mut c = container(&s, &format!("stop-{}", signal.to_lowercase()), "wait", "7");
        let cmd_json = c.out("cmd.json");
        report_of(c.running(), &cmd_json, T);
        let init = c.init_pid().expect("runc state: not running");
        // CMD made 50 short-lived orphans: ocwrap, PID 1, reaps them all.
        let zombies = || {
            namespace_processes(init)
                .into_iter()
                .filter(|(_, _, st)| st == "Z")
                .count()
        };
        assert!(
            wait_until(T, || zombies() == 0),
            "{} zombies left in the container: {:?}",
            zombies(),
            namespace_processes(init)
        );
        let inside = namespace_processes(init);
        assert_eq!(inside.len(), 5, "ocwrap, CMD and 3 recorders: {inside:?}");
        assert!(
            inside.iter().any(|&(h, i, _)| h == init && i == 1),
            "{inside:?}"
        );
        let start = Instant::now();
        c.kill(signal);
        if c.running().wait(EARLY).is_none() {
            let id = c.id.clone();
            let hint = if signal == "TERM" {
                ""
            } else {
                " (ocwrap does not take it as a stop request)"
            };
            panic!(
                "the container did not stop within {EARLY:?} of `runc kill {id} {signal}`{hint}; \
                 still in it (host PID, PID inside, state): {:?}\n{}",
                namespace_processes(init),
                c.running().output()
            );
        }
        assert!(start.elapsed() < EARLY);
        let got = signals(&c, "cmd");
        assert!(
            got == format!("SIG{signal}\n") || got == "SIGTERM\n",
            "CMD got {got:?} for `runc kill {signal}`"
        );
        assert_ended(&mut c, init, 7);
    }

    #[test]
    fn runc_kill_term_ends_the_whole_tree() {
        stop_by("TERM");
    }

    /// SIGPWR (sent by some runtimes and by `runc kill ID PWR`) is a stop
    /// request like SIGTERM.
    #[test]
    fn runc_kill_pwr_ends_the_whole_tree() {
        stop_by("PWR");
    }

    #[test]
    fn a_cmd_that_starts_setsid_daemons_and_exits() {
        let s = Scene::new("env-runc-exit");
        let mut c = container(&s, "exit", "exit", "3");
        let cmd_json = c.out("cmd.json");
        report_of(c.running(), &cmd_json, T);
        let start = Instant::now();
        let init = c.init_pid();
        if c.running().wait(EARLY).is_none() {
            panic!(
                "the container did not end within {EARLY:?} of CMD's exit; still in it: {:?}\n{}",
                init.map(namespace_processes),
                c.running().output()
            );
        }
        assert!(start.elapsed() < EARLY);
        assert_ended(&mut c, init.unwrap_or(-1), 3);
    }
}

// ---------------------------------------------------------------------
// Smaller rough edges
// ---------------------------------------------------------------------

mod rough_edges {
    //! A tmux server whose command line holds `opencode serve` (tmux keeps
    //! its first client's arguments), which `reap` must not take for a
    //! server; a FOLDER the user cannot read, and a fork refused by the
    //! user's process limit, which must be reported as what they are.

    use super::*;

    /// `SCENE/bin/opencode`: the fake, under the name reap looks for.
    fn opencode_link(s: &Scene) -> String {
        let bin = s.path("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let link = bin.join("opencode");
        std::os::unix::fs::symlink(fixture("fake-opencode"), &link).unwrap();
        link.display().to_string()
    }

    fn argv(pid: i32) -> Vec<String> {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .unwrap_or_default()
            .split(|&b| b == 0)
            .filter(|w| !w.is_empty())
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect()
    }

    /// `tmux new -d opencode serve ...` on a private socket: the tmux
    /// server (an orphan, re-parented to PID 1, whose arguments still read
    /// `tmux ... new-session -d .../opencode serve --port=0 --mark=M`) and
    /// its pane's server (whose parent, the tmux server, is alive) are both
    /// left alone by `reap`, while an orphaned server next to them, which
    /// the same words match, is ended.
    #[test]
    fn reap_leaves_a_tmux_server_that_runs_opencode_serve() {
        install::packages(&["tmux"]);
        let s = Scene::new("env-tmux");
        let opencode = opencode_link(&s);
        let words = format!("serve --port=0 --mark={}", s.mark);
        let pattern = format!("opencode {words}");
        let sock = s.path("sock");
        let pane_pids = s.path("pane.json");
        let mut c = Command::new("tmux");
        c.args([
            "-S",
            p(&sock),
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            &opencode,
        ])
        .args(words.split(' '))
        .env("FAKE_OPENCODE_PIDS", &pane_pids);
        scene_env(&s, &mut c);
        own_session(&mut c);
        Running::start(c).finish(T, "tmux new-session -d");
        let mut d = Command::new("tmux");
        d.args(["-S", p(&sock), "display-message", "-p", "#{pid}"]);
        let mut disp = Running::start(d);
        let st = disp.finish(T, "tmux display-message");
        assert!(st.success(), "{}", disp.output());
        let server_pid: i32 = disp.stdout().trim().parse().expect("the tmux server's pid");
        let server = Proc::open_marked(server_pid, &marker(&s)).expect("the tmux server is gone");
        // Whatever happens below, the tmux server goes (by its PID); its
        // pane's processes carry the scene's marker and go with the scene.
        struct Ends<'a>(&'a Proc);
        impl Drop for Ends<'_> {
            fn drop(&mut self) {
                self.0.signal(libc::SIGKILL);
                self.0.ends_within(T);
            }
        }
        let _ends = Ends(&server);
        let pane = read_json(&pane_pids, T).expect("the pane's opencode never reported");
        let pane_oc = pane["opencode"].as_i64().unwrap() as i32;
        let pane_proc = Proc::open_marked(pane_oc, &marker(&s)).expect("the pane's opencode");
        let server_argv = argv(server_pid).join(" ");
        assert!(
            server_argv.starts_with("tmux ") && server_argv.contains(&pattern),
            "not the case under test: the tmux server's arguments are {server_argv:?}"
        );
        assert_eq!(
            stat_field(server_pid, 4).as_deref(),
            Some("1"),
            "the tmux server is not an orphan"
        );
        // The pane's server is a server (by the same matcher reap uses).
        let matcher = ocwrap::opencode::ServerCommand::parse(&pattern).unwrap();
        assert!(matcher.matches(&argv(pane_oc)), "{:?}", argv(pane_oc));
        assert!(!matcher.matches(&argv(server_pid)));

        // The control: an orphaned server that the same words match.
        let orphan_pids = s.path("orphan.json");
        let mut c = Command::new("sh");
        c.args([
            "-c",
            &format!("({opencode} {words} >/dev/null 2>&1 &); exit 0"),
        ])
        .env("FAKE_OPENCODE_PIDS", &orphan_pids);
        scene_env(&s, &mut c);
        own_session(&mut c);
        Running::start(c).finish(T, "the orphaned server");
        let orphan = read_json(&orphan_pids, T).expect("the orphan never reported");
        let root = orphan["opencode"].as_i64().unwrap() as i32;
        let mut orphan_tree: BTreeSet<i32> = [root].into();
        orphan_tree.extend(
            orphan["children"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_i64().unwrap() as i32),
        );
        let orphan_procs: Vec<Proc> = orphan_tree
            .iter()
            .map(|&pid| Proc::open_marked(pid, &marker(&s)).expect("the orphan's tree"))
            .collect();
        assert!(
            wait_until(T, || stat_field(root, 4).as_deref() == Some("1")),
            "not an orphan"
        );

        let mut dry = Running::start(ocwrap(
            &s,
            &["reap", "--dry-run", "--json", "--match", &pattern],
        ));
        assert_eq!(code(dry.finish(T, "reap --dry-run")), 0, "{}", dry.output());
        assert_eq!(
            reap_targets(&json_of(&dry)),
            orphan_tree,
            "{}",
            dry.output()
        );
        // The default pattern: other tests' orphans may show up (a dry run
        // touches nothing), the tmux server and its pane never.
        let mut dry = Running::start(ocwrap(&s, &["reap", "--dry-run", "--json"]));
        assert_eq!(code(dry.finish(T, "reap --dry-run")), 0, "{}", dry.output());
        let targets = reap_targets(&json_of(&dry));
        assert!(targets.contains(&root), "{}", dry.output());
        assert!(
            !targets.contains(&server_pid) && !targets.contains(&pane_oc),
            "{}",
            dry.output()
        );

        let mut reap = Running::start(ocwrap(
            &s,
            &[
                "reap",
                "--json",
                "--match",
                &pattern,
                "--grace",
                "2s",
                "--kill-timeout",
                "2s",
            ],
        ));
        assert_eq!(code(reap.finish(T, "reap")), 0, "{}", reap.output());
        for p in &orphan_procs {
            assert!(
                p.ends_within(Duration::from_secs(1)),
                "{} outlived reap\n{}",
                p.pid,
                reap.output()
            );
        }
        assert!(
            server.alive(),
            "reap ended the tmux server\n{}",
            reap.output()
        );
        assert!(
            pane_proc.alive(),
            "reap ended the pane's server\n{}",
            reap.output()
        );
    }

    user_test!(an_unreadable_folder_is_named_before_anything_starts, |_| {
        let s = Scene::new("env-user-folder");
        let folder = s.path("private");
        let pids = s.path("opencode.json");
        use std::os::unix::fs::PermissionsExt;
        for mode in [0o000, 0o300, 0o600] {
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(mode)).unwrap();
            for detach in [false, true] {
                let mut args = vec!["spawn", "--opencode"];
                let fake = fixture("fake-opencode");
                args.push(p(&fake));
                if detach {
                    args.push("--detach");
                }
                args.push(p(&folder));
                let mut c = ocwrap(&s, &args);
                c.env("FAKE_OPENCODE_PIDS", &pids);
                let mut r = Running::start(c);
                let st = r.finish(T, "ocwrap spawn");
                let what = format!("mode {mode:o}, {args:?}");
                assert_eq!(code(st), 125, "{what}\n{}", r.output());
                assert_eq!(
                    r.stderr(),
                    format!(
                        "ocwrap: error: cannot use folder {}: permission denied\n",
                        folder.display()
                    ),
                    "{what}"
                );
                assert!(!pids.exists(), "{what}: opencode was started");
            }
            std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        assert!(!s.state_dir().exists(), "the state directory was touched");
    });

    user_test!(a_refused_fork_is_125_and_says_so, |_| {
        let s = Scene::new("env-user-nproc");
        let folder = s.path("repo");
        std::fs::create_dir(&folder).unwrap();
        let fake = fixture("fake-opencode");
        let bin = ocwrap_bin();
        let cases: [(&[&str], &str); 3] = [
            (
                &["--", "true"],
                "ocwrap: error: cannot start true: fork failed: resource temporarily unavailable",
            ),
            (
                &["spawn", "--opencode", p(&fake), p(&folder)],
                "fork failed: resource temporarily unavailable",
            ),
            (
                &["spawn", "--detach", "--opencode", p(&fake), p(&folder)],
                "cannot fork the detached supervisor",
            ),
        ];
        for (args, says) in cases {
            // At most one process for this user, who already has more: the
            // kernel refuses ocwrap's fork with EAGAIN.
            let mut c = Command::new("prlimit");
            c.args(["--nproc=1", "--"]).arg(&bin).args(args);
            scene_env(&s, &mut c);
            let mut r = Running::start(c);
            let st = r.finish(T, "ocwrap under prlimit --nproc=1");
            let err = r.stderr();
            assert_eq!(code(st), 125, "{args:?}: {err}");
            assert!(
                err.contains(says) && err.lines().count() == 1,
                "{args:?}: {err}"
            );
        }
        let mut ps = Running::start(ocwrap(&s, &["ps", "--json"]));
        ps.finish(T, "ps");
        assert_eq!(ps.stdout().trim(), "[]", "a record was left");
        let logs = std::fs::read_dir(s.state_dir())
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().contains(".log"))
                    .count()
            })
            .unwrap_or(0);
        assert_eq!(logs, 0, "a log was left");
    });
}
