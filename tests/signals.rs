//! Signals, terminals and shutdown order (issue 11), against real processes.
//!
//! The CMDs here are recorders (`tests/fixtures/signals.py record`): they
//! take every catchable signal with sigwaitinfo and write down its number,
//! its sender (`si_pid`) and when it came, so a test can tell a signal that
//! ocwrap forwarded from one it sent on its own, and count them. Job control
//! runs through a real pseudo-terminal with an interactive bash
//! (`tests/fixtures/pty_driver.py`).
//!
//! Two ways to wait for "nothing happened" without sleeping:
//! - a *sentinel*: after the signal under test, send one that the same path
//!   forwards and that is dequeued after it (higher-numbered, or real-time),
//!   and wait for the sentinel to arrive;
//! - a *probe* ([`Run::untouched`]): the test itself sends SIGWINCH to one of
//!   CMD's other children and waits for it. The kernel hands a process its
//!   pending standard signals lowest number first, so when the probe (28)
//!   is recorded, any SIGTERM (15) that ocwrap had sent that child before is
//!   recorded too, and a SIGKILL would have left no one to record it.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);

fn signals_py() -> String {
    fixture("signals.py").display().to_string()
}

/// `ocwrap ARGS` as [`Scene::ocwrap`], with none of the options of issue 11
/// coming from the test's own environment.
fn ocwrap(s: &Scene, args: &[&str]) -> Command {
    let mut c = s.ocwrap(args);
    for v in [
        "OCWRAP_REWRITE",
        "OCWRAP_REMAP_EXIT",
        "OCWRAP_LINGER",
        "OCWRAP_REPORT",
        "OCWRAP_STOP_SIGNAL",
        "OCWRAP_FORWARD_TO",
        "OCWRAP_PDEATH_SIGNAL",
    ] {
        c.env_remove(v);
    }
    c
}

fn sig_name(sig: i32) -> String {
    if sig == libc::SIGSTKFLT {
        return "SIGSTKFLT".into();
    }
    let rt = libc::SIGRTMIN();
    if sig >= rt {
        return format!("SIGRTMIN+{}", sig - rt);
    }
    ocwrap::signal::name(sig)
}

/// One line of a recorder's file.
#[derive(Clone, Debug, PartialEq)]
enum Event {
    /// Signal `sig` from process `from`, at CLOCK_MONOTONIC `t` (seconds).
    Sig {
        sig: i32,
        from: i32,
        t: f64,
    },
    Exit {
        code: i32,
        t: f64,
    },
}

/// Every complete line a recorder wrote so far.
fn events(path: &Path) -> Vec<Event> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| match v.get("exit") {
            Some(code) => Event::Exit {
                code: code.as_i64().unwrap() as i32,
                t: v["t"].as_f64().unwrap(),
            },
            None => Event::Sig {
                sig: v["sig"].as_i64().unwrap() as i32,
                from: v["pid"].as_i64().unwrap() as i32,
                t: v["t"].as_f64().unwrap(),
            },
        })
        .collect()
}

/// The signals recorded, as (signal, sender).
fn received(path: &Path) -> Vec<(i32, i32)> {
    events(path)
        .into_iter()
        .filter_map(|e| match e {
            Event::Sig { sig, from, .. } => Some((sig, from)),
            Event::Exit { .. } => None,
        })
        .collect()
}

fn count(path: &Path, sig: i32) -> usize {
    received(path).iter().filter(|(s, _)| *s == sig).count()
}

fn first_time(path: &Path, sig: i32) -> Option<f64> {
    events(path).into_iter().find_map(|e| match e {
        Event::Sig { sig: s, t, .. } if s == sig => Some(t),
        _ => None,
    })
}

fn exit_time(path: &Path) -> Option<f64> {
    events(path).into_iter().find_map(|e| match e {
        Event::Exit { t, .. } => Some(t),
        _ => None,
    })
}

fn describe(list: &[(i32, i32)]) -> String {
    let v: Vec<String> = list
        .iter()
        .map(|(s, from)| format!("{} from {from}", sig_name(*s)))
        .collect();
    format!("[{}]", v.join(", "))
}

/// Fields of /proc/PID/stat after the command name: state, ppid, pgrp,
/// session, tty_nr, tpgid, ...
fn stat(pid: i32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    Some(rest.split(' ').map(String::from).collect())
}

fn state(pid: i32) -> char {
    stat(pid).and_then(|f| f[0].chars().next()).unwrap_or('?')
}

fn pgrp(pid: i32) -> i32 {
    stat(pid).map(|f| f[2].parse().unwrap()).unwrap_or(0)
}

/// The foreground process group of `pid`'s controlling terminal.
fn tpgid(pid: i32) -> i32 {
    stat(pid).map(|f| f[5].parse().unwrap()).unwrap_or(0)
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The scene's live process named `name`.
fn find(s: &Scene, name: &str) -> Option<i32> {
    s.alive().into_iter().find(|&p| comm(p) == name)
}

fn sigign_has(hex: &str, sig: i32) -> bool {
    u64::from_str_radix(hex, 16).unwrap() & (1 << (sig - 1)) != 0
}

/// ocwrap in front of a recorder, with its stderr kept in a file.
struct Run {
    /// ocwrap's PID.
    pid: i32,
    /// CMD's record file; CMD's children record to `rec.NAME`.
    rec: PathBuf,
    /// What CMD reported once it was set up (`signals.py`: OUT.ready).
    ready: Value,
    err: PathBuf,
}

impl Run {
    /// `ocwrap OPTS -- signals.py record REC ARGS`.
    fn start(s: &mut Scene, name: &str, opts: &[&str], args: &[&str]) -> Run {
        Run::start_env(s, name, opts, &[], args)
    }

    fn start_env(
        s: &mut Scene,
        name: &str,
        opts: &[&str],
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Run {
        let rec = s.path(name);
        let py = signals_py();
        let mut all: Vec<&str> = opts.to_vec();
        all.extend(["--", "python3", &py, "record", rec.to_str().unwrap()]);
        all.extend(args);
        let mut c = ocwrap(s, &all);
        c.envs(env.iter().copied());
        Run::spawn(s, name, c, None)
    }

    /// Starts `c`, which runs a recorder that records to `s.path(name)`.
    /// `ocwrap_pid` is for when `c` is not ocwrap itself (a shell that
    /// starts it): None means CMD's parent.
    fn spawn(s: &mut Scene, name: &str, mut c: Command, ocwrap_pid: Option<i32>) -> Run {
        let rec = s.path(name);
        let err = s.path(&format!("{name}.stderr"));
        c.stderr(std::fs::File::create(&err).unwrap());
        let spawned = s.spawn(c) as i32;
        let ready = PathBuf::from(format!("{}.ready", rec.display()));
        let ok = wait_until(T, || ready.exists() || !is_alive(spawned));
        let text = std::fs::read_to_string(&err).unwrap_or_default();
        assert!(ok && ready.exists(), "CMD never got ready; stderr: {text}");
        let ready: Value = serde_json::from_str(&std::fs::read_to_string(&ready).unwrap()).unwrap();
        let pid = ocwrap_pid.unwrap_or(ready["ppid"].as_i64().unwrap() as i32);
        Run {
            pid,
            rec,
            ready,
            err,
        }
    }

    fn cmd(&self) -> i32 {
        self.ready["pid"].as_i64().unwrap() as i32
    }

    fn child(&self, name: &str) -> i32 {
        self.ready["children"][name].as_i64().unwrap() as i32
    }

    fn child_rec(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("{}.{name}", self.rec.display()))
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    fn send(&self, sig: i32) {
        kill_pid(self.pid, sig);
    }

    /// Waits until CMD has recorded `sig` `n` times, failing at once if
    /// ocwrap or CMD is gone first.
    fn wait_for(&self, sig: i32, n: usize, what: &str) {
        let ok = wait_until(T, || {
            count(&self.rec, sig) >= n || !is_alive(self.pid) || !is_alive(self.cmd())
        });
        assert!(
            ok && count(&self.rec, sig) >= n,
            "{what}: CMD has {} (wanted {n} x {}); ocwrap {}, CMD {}; stderr: {}",
            describe(&received(&self.rec)),
            sig_name(sig),
            if is_alive(self.pid) {
                "running"
            } else {
                "gone"
            },
            if is_alive(self.cmd()) {
                "running"
            } else {
                "gone"
            },
            self.stderr()
        );
    }

    /// Probes CMD's child `name` (see the module docs) and returns what it
    /// had received before the probe. Fails if it is gone.
    fn untouched(&self, name: &str) -> Vec<(i32, i32)> {
        let pid = self.child(name);
        let rec = self.child_rec(name);
        let me = std::process::id() as i32;
        let before = count(&rec, libc::SIGWINCH);
        kill_pid(pid, libc::SIGWINCH);
        let probed = || {
            received(&rec)
                .iter()
                .filter(|&&(s, f)| s == libc::SIGWINCH && f == me)
                .count()
                > before
        };
        let ok = wait_until(T, || probed() || !is_alive(pid));
        assert!(
            ok && probed(),
            "CMD's child {name} ({pid}) was ended; it had received {}",
            describe(&received(&rec))
        );
        received(&rec)
            .into_iter()
            .filter(|&(s, f)| !(s == libc::SIGWINCH && f == me))
            .collect()
    }

    /// Asserts that CMD's child `name` is alive and got nothing from anyone.
    fn assert_untouched(&self, name: &str, when: &str) {
        let got = self.untouched(name);
        assert!(
            got.is_empty(),
            "{when}: CMD's child {name} got {} (ocwrap is {})",
            describe(&got),
            self.pid
        );
    }

    fn exit(&self, s: &mut Scene, timeout: Duration) -> ExitStatus {
        match s.wait(self.pid as u32, timeout) {
            Some(st) => st,
            None => panic!(
                "ocwrap did not exit within {timeout:?}; CMD has {}; stderr: {}",
                describe(&received(&self.rec)),
                self.stderr()
            ),
        }
    }
}

// ---------------------------------------------------------------------------
// Forwarded signals: each one reaches CMD once, and nothing else happens.

/// Forwards `sig` to a recorder CMD with two other children (one in CMD's
/// group, one in a session of its own) and checks that it arrives once,
/// from ocwrap, that ocwrap, CMD and the children keep running, and that
/// the final SIGTERM still ends everything with CMD's status. Returns what
/// went wrong.
fn forwarded_only(sig: i32) -> Result<(), String> {
    let mut s = Scene::new("fwdonly");
    let name = sig_name(sig);
    let r = Run::start(
        &mut s,
        "cmd",
        &["--grace", "5s"],
        &[
            "--exit-on",
            "TERM",
            "--exit-code",
            "7",
            "--child",
            "plain",
            "--child",
            "daemon:setsid",
        ],
    );
    r.send(sig);
    let ok = wait_until(T, || {
        count(&r.rec, sig) >= 1 || !is_alive(r.pid) || !is_alive(r.cmd())
    });
    if !ok || count(&r.rec, sig) == 0 {
        let how = match s.wait(r.pid as u32, Duration::from_secs(5)) {
            Some(st) => format!("ocwrap exited ({st})"),
            None => "ocwrap still running".into(),
        };
        return Err(format!(
            "{name} never reached CMD: {how}, CMD {}",
            if is_alive(r.cmd()) { "alive" } else { "gone" }
        ));
    }
    for child in ["plain", "daemon"] {
        let mut got = r.untouched(child);
        // Continuing CMD's group on SIGCONT is harmless to the others.
        got.retain(|&(s, _)| sig != libc::SIGCONT || s != libc::SIGCONT);
        if !got.is_empty() {
            return Err(format!(
                "after {name}, CMD's child {child} got {}",
                describe(&got)
            ));
        }
    }
    if !is_alive(r.pid) || !is_alive(r.cmd()) {
        return Err(format!("after {name}, ocwrap or CMD is gone"));
    }
    r.send(libc::SIGTERM);
    let st = r.exit(&mut s, T);
    let got = received(&r.rec);
    let want = vec![(sig, r.pid), (libc::SIGTERM, r.pid)];
    if got != want {
        return Err(format!(
            "CMD got {} (wanted {}, ocwrap is {})",
            describe(&got),
            describe(&want),
            r.pid
        ));
    }
    if st.code() != Some(7) {
        return Err(format!("after {name} then TERM, ocwrap exited {st}"));
    }
    if !s.alive().is_empty() {
        return Err(format!("after {name} then TERM, left {:?}", s.alive()));
    }
    Ok(())
}

fn all_forwarded_only(sigs: &[i32]) {
    let failures: Vec<String> = sigs
        .iter()
        .filter_map(|&sig| forwarded_only(sig).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} signals:\n{}",
        failures.len(),
        sigs.len(),
        failures.join("\n")
    );
}

#[test]
fn issue_11_point_1_signals_are_forwarded_once_and_ocwrap_keeps_running() {
    all_forwarded_only(&[
        libc::SIGALRM,
        libc::SIGIO,
        libc::SIGPROF,
        libc::SIGVTALRM,
        libc::SIGXCPU,
        libc::SIGXFSZ,
        libc::SIGSTKFLT,
        libc::SIGSYS,
        libc::SIGTRAP,
        libc::SIGABRT,
        libc::SIGBUS,
        libc::SIGFPE,
        libc::SIGILL,
        libc::SIGSEGV,
    ]);
}

#[test]
fn hup_int_and_quit_are_only_forwarded() {
    all_forwarded_only(&[libc::SIGHUP, libc::SIGINT, libc::SIGQUIT]);
}

#[test]
fn usr_winch_urg_cont_and_real_time_signals_are_only_forwarded() {
    all_forwarded_only(&[
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGWINCH,
        libc::SIGURG,
        libc::SIGCONT,
        libc::SIGRTMIN(),
        libc::SIGRTMIN() + 6,
        libc::SIGRTMAX(),
    ]);
}

#[test]
fn real_time_signals_queue_and_a_pipe_sent_is_forwarded() {
    let mut s = Scene::new("rtqueue");
    let r = Run::start(&mut s, "cmd", &["-q"], &["--exit-on", "TERM"]);
    let rt = libc::SIGRTMIN() + 2;
    // Three at once: real-time signals queue, so each is one forward.
    for _ in 0..3 {
        r.send(rt);
    }
    r.wait_for(rt, 3, "three queued real-time signals");
    // A SIGPIPE sent to ocwrap is forwarded like any other signal (it never
    // ends ocwrap).
    r.send(libc::SIGPIPE);
    r.wait_for(libc::SIGPIPE, 1, "the forwarded SIGPIPE");
    let sentinel = libc::SIGRTMIN() + 3;
    r.send(sentinel);
    r.wait_for(sentinel, 1, "the sentinel");
    assert!(is_alive(r.pid), "SIGPIPE ended ocwrap");
    r.send(libc::SIGTERM);
    let st = r.exit(&mut s, T);
    assert_eq!(st.code(), Some(0), "{}", r.stderr());
    let from_ocwrap = |sig| (sig, r.pid);
    assert_eq!(
        received(&r.rec),
        vec![
            from_ocwrap(rt),
            from_ocwrap(rt),
            from_ocwrap(rt),
            from_ocwrap(libc::SIGPIPE),
            from_ocwrap(sentinel),
            from_ocwrap(libc::SIGTERM)
        ],
        "{}",
        describe(&received(&r.rec))
    );
}

#[test]
fn a_sigpipe_ocwrap_raises_itself_is_not_forwarded() {
    // ocwrap's stderr is a pipe nobody reads any more, and -v makes it log
    // every forward: each log line is a write to a closed pipe, whose
    // SIGPIPE is ocwrap's own, not CMD's.
    let mut s = Scene::new("selfpipe");
    let rec = s.path("cmd");
    let py = signals_py();
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both are new and ours.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(r);
    let mut c = ocwrap(
        &s,
        &[
            "-v",
            "--",
            "python3",
            &py,
            "record",
            rec.to_str().unwrap(),
            "--exit-on",
            "TERM",
        ],
    );
    c.stderr(std::process::Stdio::from(w));
    let pid = s.spawn(c) as i32;
    let ready = PathBuf::from(format!("{}.ready", rec.display()));
    assert!(wait_until(T, || ready.exists()), "CMD never got ready");
    let run = Run {
        pid,
        rec: rec.clone(),
        ready: serde_json::from_str(&std::fs::read_to_string(&ready).unwrap()).unwrap(),
        err: s.path("none"),
    };
    run.send(libc::SIGUSR1);
    run.wait_for(libc::SIGUSR1, 1, "the forwarded USR1");
    let sentinel = libc::SIGRTMIN() + 3;
    run.send(sentinel);
    run.wait_for(sentinel, 1, "the sentinel");
    run.send(libc::SIGTERM);
    let st = s.wait(pid as u32, T).expect("ocwrap did not exit");
    assert_eq!(st.code(), Some(0));
    let from_ocwrap = |sig| (sig, pid);
    assert_eq!(
        received(&rec),
        vec![
            from_ocwrap(libc::SIGUSR1),
            from_ocwrap(sentinel),
            from_ocwrap(libc::SIGTERM)
        ],
        "{}",
        describe(&received(&rec))
    );
}

#[test]
fn pwr_starts_a_teardown_like_term() {
    let cases: [(&[&str], i32); 2] = [
        (&[], libc::SIGPWR),
        (&["--rewrite", "PWR:TERM"], libc::SIGTERM),
    ];
    for (opts, want) in cases {
        let mut s = Scene::new("pwr");
        let mut all = vec!["-q", "--grace", "20s"];
        all.extend(opts);
        let r = Run::start(
            &mut s,
            "cmd",
            &all,
            &[
                "--exit-on",
                "PWR,TERM",
                "--exit-code",
                "3",
                "--child",
                "plain",
                "--child",
                "daemon:setsid",
            ],
        );
        r.send(libc::SIGPWR);
        let st = r.exit(&mut s, T);
        assert_eq!(
            st.code(),
            Some(3),
            "{opts:?}: ocwrap {st}; CMD got {}; stderr: {}",
            describe(&received(&r.rec)),
            r.stderr()
        );
        assert_eq!(received(&r.rec), vec![(want, r.pid)], "{opts:?}");
        // The rest got the stop signal (TERM, never rewritten) from ocwrap,
        // after CMD had exited.
        let cmd_exit = exit_time(&r.rec).unwrap();
        for child in ["plain", "daemon"] {
            let rec = r.child_rec(child);
            assert_eq!(received(&rec), vec![(libc::SIGTERM, r.pid)], "{child}");
            assert!(
                first_time(&rec, libc::SIGTERM).unwrap() >= cmd_exit,
                "{child}"
            );
        }
        assert!(s.alive().is_empty(), "{:?}", s.alive());
    }
}

#[test]
fn hup_reloads_twice_then_term_ends_everything() {
    let mut s = Scene::new("reload");
    let r = Run::start(
        &mut s,
        "server",
        &["--grace", "3s"],
        &[
            "--exit-on",
            "TERM",
            "--exit-code",
            "5",
            "--child",
            "worker",
            "--child",
            "daemon:setsid",
        ],
    );
    for n in 1..=2 {
        r.send(libc::SIGHUP);
        r.wait_for(libc::SIGHUP, n, "a reload");
        r.assert_untouched("worker", &format!("after HUP #{n}"));
        r.assert_untouched("daemon", &format!("after HUP #{n}"));
        assert!(is_alive(r.pid) && is_alive(r.cmd()), "after HUP #{n}");
    }
    let start = Instant::now();
    r.send(libc::SIGTERM);
    let st = r.exit(&mut s, T);
    assert_eq!(st.code(), Some(5), "{}", r.stderr());
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "TERM took {:?}: the grace ran out",
        start.elapsed()
    );
    assert_eq!(
        received(&r.rec),
        vec![
            (libc::SIGHUP, r.pid),
            (libc::SIGHUP, r.pid),
            (libc::SIGTERM, r.pid)
        ]
    );
    for child in ["worker", "daemon"] {
        let got = received(&r.child_rec(child));
        assert_eq!(got.last(), Some(&(libc::SIGTERM, r.pid)), "{child}");
    }
    assert!(s.alive().is_empty(), "{:?}", s.alive());
}

#[test]
fn int_to_a_shell_that_survives_it_changes_nothing() {
    let mut s = Scene::new("intshell");
    // A shell-like CMD: it ignores INT, as an interactive shell does, runs
    // a job, and notes each USR1 (the sentinel: the shell only sees it once
    // ocwrap has handled the INTs sent before it).
    let marks = s.path("usr1");
    let script = format!(
        "trap '' INT; trap 'echo usr1 >> {marks}' USR1; \"$@\" & job=$!; \
         while kill -0 $job 2>/dev/null; do wait $job; done",
        marks = marks.display()
    );
    let rec = s.path("job");
    let py = signals_py();
    let c = ocwrap(
        &s,
        &[
            "--grace",
            "5s",
            "--",
            "bash",
            "-c",
            &script,
            "sh",
            "python3",
            &py,
            "record",
            rec.to_str().unwrap(),
        ],
    );
    let err = s.path("stderr");
    let mut c = c;
    c.stderr(std::fs::File::create(&err).unwrap());
    let pid = s.spawn(c) as i32;
    let ready_path = PathBuf::from(format!("{}.ready", rec.display()));
    assert!(wait_until(T, || ready_path.exists() || !is_alive(pid)));
    let job: Value = serde_json::from_str(&std::fs::read_to_string(&ready_path).unwrap()).unwrap();
    let shell = job["ppid"].as_i64().unwrap() as i32;
    let job = job["pid"].as_i64().unwrap() as i32;
    for n in 1..=2 {
        kill_pid(pid, libc::SIGINT);
        kill_pid(pid, libc::SIGUSR1);
        let lines = || {
            std::fs::read_to_string(&marks)
                .unwrap_or_default()
                .lines()
                .count()
        };
        let ok = wait_until(T, || lines() >= n || !is_alive(shell));
        assert!(
            ok && lines() >= n,
            "the sentinel USR1 #{n} never reached the shell (alive: {}); stderr: {}",
            is_alive(shell),
            std::fs::read_to_string(&err).unwrap_or_default()
        );
        // Probe the job: nobody may have signalled it.
        let before = count(&rec, libc::SIGWINCH);
        kill_pid(job, libc::SIGWINCH);
        assert!(wait_until(T, || count(&rec, libc::SIGWINCH) > before || !is_alive(job)));
        let got: Vec<(i32, i32)> = received(&rec)
            .into_iter()
            .filter(|(s, _)| *s != libc::SIGWINCH)
            .collect();
        assert!(
            got.is_empty() && is_alive(job),
            "after INT #{n}, the shell's job got {} (alive: {})",
            describe(&got),
            is_alive(job)
        );
        assert!(is_alive(pid) && is_alive(shell), "after INT #{n}");
    }
    kill_pid(pid, libc::SIGTERM);
    let st = s.wait(pid as u32, T).expect("ocwrap did not exit on TERM");
    assert_eq!(
        st.code(),
        Some(128 + libc::SIGTERM),
        "{}",
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    assert_eq!(received(&rec).last(), Some(&(libc::SIGTERM, pid)));
    assert!(s.alive().is_empty(), "{:?}", s.alive());
}

#[test]
fn a_second_stop_signal_during_the_teardown_kills_at_once() {
    for second in [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGHUP,
        libc::SIGPWR,
    ] {
        let mut s = Scene::new("second");
        let name = sig_name(second);
        // CMD ignores TERM (it records it and goes on).
        let r = Run::start(
            &mut s,
            "cmd",
            &["--grace", "120s"],
            &[
                "--exit-on",
                "",
                "--child",
                "plain",
                "--child",
                "daemon:setsid",
            ],
        );
        r.send(libc::SIGTERM);
        r.wait_for(libc::SIGTERM, 1, "the stop request");
        // CMD has not exited, so the rest has not been signalled yet; and
        // other signals are still forwarded to CMD.
        r.assert_untouched("plain", "during the grace, CMD alive");
        r.assert_untouched("daemon", "during the grace, CMD alive");
        r.send(libc::SIGUSR1);
        r.wait_for(libc::SIGUSR1, 1, "a signal forwarded during the teardown");
        assert!(is_alive(r.pid), "{name}: ocwrap ended on the first TERM");
        let start = Instant::now();
        r.send(second);
        let st = r.exit(&mut s, Duration::from_secs(20));
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{name}: {:?}",
            start.elapsed()
        );
        assert_eq!(
            st.code(),
            Some(128 + libc::SIGKILL),
            "second {name}: {}",
            r.stderr()
        );
        assert_eq!(
            received(&r.rec)[..2],
            [(libc::SIGTERM, r.pid), (libc::SIGUSR1, r.pid)],
            "{name}"
        );
        assert!(s.alive().is_empty(), "{name}: {:?}", s.alive());
    }
}

// ---------------------------------------------------------------------------
// Shutdown order and its bound.

#[test]
fn the_worker_gets_its_first_sigterm_from_the_master() {
    let mut s = Scene::new("master");
    // The master finishes its work in hand (0.3 s), then stops its setsid
    // worker itself and waits for it before exiting.
    let r = Run::start(
        &mut s,
        "master",
        &["--grace", "20s"],
        &[
            "--exit-on",
            "TERM",
            "--drain",
            "0.3",
            "--stop-children",
            "--child",
            "worker:setsid",
        ],
    );
    let master = r.cmd();
    r.send(libc::SIGTERM);
    let st = r.exit(&mut s, T);
    assert_eq!(st.code(), Some(0), "{}", r.stderr());
    assert_eq!(received(&r.rec), vec![(libc::SIGTERM, r.pid)]);
    let worker = received(&r.child_rec("worker"));
    assert_eq!(
        worker.first(),
        Some(&(libc::SIGTERM, master)),
        "the worker's first SIGTERM came from {} (master {master}, ocwrap {}): {}",
        worker.first().map(|w| w.1).unwrap_or(0),
        r.pid,
        describe(&worker)
    );
    assert!(
        !worker.contains(&(libc::SIGTERM, r.pid)),
        "{}",
        describe(&worker)
    );
    assert!(s.alive().is_empty(), "{:?}", s.alive());
}

#[test]
fn when_cmd_exits_by_itself_the_rest_gets_the_stop_signal_at_once() {
    let mut s = Scene::new("cmdexit");
    // USR1 makes CMD exit (with 3) on its own account.
    let r = Run::start(
        &mut s,
        "cmd",
        &["-q", "--grace", "60s"],
        &[
            "--exit-on",
            "USR1",
            "--exit-code",
            "3",
            "--child",
            "plain",
            "--child",
            "group:group",
            "--child",
            "daemon:setsid",
        ],
    );
    let start = Instant::now();
    r.send(libc::SIGUSR1);
    let st = r.exit(&mut s, T);
    assert_eq!(st.code(), Some(3), "{}", r.stderr());
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    let cmd_exit = exit_time(&r.rec).unwrap();
    for child in ["plain", "group", "daemon"] {
        let rec = r.child_rec(child);
        assert_eq!(received(&rec), vec![(libc::SIGTERM, r.pid)], "{child}");
        let after = first_time(&rec, libc::SIGTERM).unwrap() - cmd_exit;
        assert!(
            (0.0..5.0).contains(&after),
            "{child} got SIGTERM {after:.3}s after CMD exited"
        );
    }
    assert!(s.alive().is_empty(), "{:?}", s.alive());
}

#[test]
fn a_term_ignoring_cmd_is_killed_within_the_bound_and_the_rest_waits_for_it() {
    let mut s = Scene::new("bound");
    let report = s.path("report.jsonl");
    let r = Run::start(
        &mut s,
        "cmd",
        &[
            "--grace",
            "2s",
            "--kill-timeout",
            "2s",
            "--report",
            report.to_str().unwrap(),
        ],
        &[
            "--exit-on",
            "",
            "--child",
            "plain",
            "--child",
            "daemon:setsid",
        ],
    );
    let children = [r.child("plain"), r.child("daemon")];
    let start = Instant::now();
    r.send(libc::SIGTERM);
    let st = r.exit(&mut s, T);
    let elapsed = start.elapsed();
    assert_eq!(st.code(), Some(128 + libc::SIGKILL), "{}", r.stderr());
    assert!(
        elapsed >= Duration::from_secs(2),
        "SIGKILL before the end of the grace: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(2 + 2 + 3),
        "over grace + kill-timeout: {elapsed:?}"
    );
    assert_eq!(received(&r.rec), vec![(libc::SIGTERM, r.pid)]);
    // CMD never exited, so the rest never got the stop signal: only the
    // SIGKILL at the end of the grace, which no one can record.
    for child in ["plain", "daemon"] {
        let got = received(&r.child_rec(child));
        assert!(
            got.is_empty(),
            "{child} got {} while CMD was still shutting down",
            describe(&got)
        );
    }
    assert!(s.alive().is_empty(), "{:?}", s.alive());
    let doc = last_report(&report);
    let cmd = entry(&doc, r.cmd());
    assert_eq!(signal_names(cmd), ["SIGTERM", "SIGKILL"], "{doc}");
    let kill_ms = cmd["signals"][1]["after_ms"].as_u64().unwrap();
    assert!(
        (1990..4000).contains(&kill_ms),
        "SIGKILL at {kill_ms} ms: {doc}"
    );
    for pid in children {
        assert_eq!(signal_names(entry(&doc, pid)), ["SIGKILL"], "{doc}");
    }
}

// ---------------------------------------------------------------------------
// Signals that were ignored when ocwrap started.

#[test]
fn under_nohup_hup_stays_ignored_and_is_not_forwarded() {
    let mut s = Scene::new("nohup");
    let rec = s.path("cmd");
    let py = signals_py();
    let mut c = Command::new("nohup");
    c.arg(bin())
        .args(["--grace", "5s", "--", "python3", &py, "record"])
        .arg(&rec)
        .args(["--child", "plain", "--child", "daemon:setsid"])
        .env(MARK_VAR, &s.mark)
        .env("OCWRAP_STATE_DIR", s.state_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let r = Run::spawn(&mut s, "cmd", c, None);
    assert!(
        sigign_has(r.ready["sigign"].as_str().unwrap(), libc::SIGHUP),
        "CMD does not ignore HUP under nohup: SigIgn {}",
        r.ready["sigign"]
    );
    r.send(libc::SIGHUP);
    r.send(libc::SIGUSR1);
    r.wait_for(libc::SIGUSR1, 1, "the sentinel");
    assert_eq!(
        received(&r.rec),
        vec![(libc::SIGUSR1, r.pid)],
        "HUP was forwarded"
    );
    r.assert_untouched("plain", "after HUP under nohup");
    r.assert_untouched("daemon", "after HUP under nohup");
    assert!(is_alive(r.pid));
    r.send(libc::SIGTERM);
    assert_eq!(r.exit(&mut s, T).code(), Some(0), "{}", r.stderr());
    assert!(s.alive().is_empty(), "{:?}", s.alive());
}

#[test]
fn a_background_job_of_a_script_keeps_int_and_quit_ignored() {
    let mut s = Scene::new("bgjob");
    let rec = s.path("cmd");
    let py = signals_py();
    // A non-interactive shell starts `ocwrap ... &` with INT and QUIT ignored.
    let mut c = Command::new("sh");
    c.args(["-c", "\"$@\" & wait $!", "sh", bin()])
        .args(["--grace", "5s", "--", "python3", &py, "record"])
        .arg(&rec)
        .args(["--child", "plain", "--child", "daemon:setsid"])
        .env(MARK_VAR, &s.mark)
        .env("OCWRAP_STATE_DIR", s.state_dir());
    let r = Run::spawn(&mut s, "cmd", c, None);
    let shell = {
        let st = stat(r.pid).unwrap();
        st[1].parse::<i32>().unwrap()
    };
    let ign = r.ready["sigign"].as_str().unwrap();
    assert!(
        sigign_has(ign, libc::SIGINT) && sigign_has(ign, libc::SIGQUIT),
        "CMD does not ignore INT and QUIT: SigIgn {ign}"
    );
    r.send(libc::SIGINT);
    r.send(libc::SIGQUIT);
    r.send(libc::SIGUSR1);
    r.wait_for(libc::SIGUSR1, 1, "the sentinel");
    assert_eq!(
        received(&r.rec),
        vec![(libc::SIGUSR1, r.pid)],
        "INT or QUIT was forwarded"
    );
    r.assert_untouched("plain", "after INT and QUIT");
    r.assert_untouched("daemon", "after INT and QUIT");
    r.send(libc::SIGTERM);
    let st = s.wait(shell as u32, T).expect("the shell did not exit");
    assert_eq!(st.code(), Some(0), "{}", r.stderr());
    assert!(s.alive().is_empty(), "{:?}", s.alive());
}

// ---------------------------------------------------------------------------
// The summary line.

#[test]
fn a_clean_exit_with_nothing_to_end_is_quiet() {
    let s = Scene::new("quiet");
    let (o, _) = run_output(ocwrap(&s, &["--", "true"]), T);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stderr(&o), "", "nothing was signalled, nothing survived");
    let (o, _) = run_output(ocwrap(&s, &["-v", "--", "true"]), T);
    assert!(
        stderr(&o).contains("ocwrap: teardown (CMD exited with status 0) done in"),
        "-v always prints the summary: {}",
        stderr(&o)
    );
    let leaves_one = ["--", "sh", "-c", "sleep 1000 & exit 0"];
    let (o, _) = run_output(ocwrap(&s, &leaves_one), T);
    assert!(
        stderr(&o).contains("ocwrap: teardown (CMD exited with status 0) done in")
            && stderr(&o).contains("1 ended on the stop signal"),
        "a teardown that signalled something prints the summary: {}",
        stderr(&o)
    );
    let mut quiet = vec!["-q"];
    quiet.extend(leaves_one);
    let (o, _) = run_output(ocwrap(&s, &quiet), T);
    assert_eq!(stderr(&o), "");
    assert!(s.alive().is_empty(), "{:?}", s.alive());
}

#[test]
fn a_program_on_a_terminal_gets_its_output_unmixed() {
    // dumb-init's tty test: `tac` under ocwrap on a terminal.
    let s = Scene::new("tac");
    let mut p = Pty::start(&s, &[bin(), "--", "tac"]);
    p.send("1\n2\n3\n\x04");
    let out = p.call(json!({"eof": 30}));
    assert!(out["ok"].as_bool().unwrap(), "{out}");
    assert_eq!(out["text"], "3\n2\n1\n");
    let st = p.call(json!({"wait": 30}));
    assert_eq!(st["status"], 0, "{st}");
}

// ---------------------------------------------------------------------------
// --rewrite, --remap-exit, --linger.

#[test]
fn rewrite_changes_what_cmd_gets_but_not_the_stop_signal() {
    let mut s = Scene::new("rewrite");
    let r = Run::start(
        &mut s,
        "cmd",
        &[
            "-q",
            "--rewrite",
            "TERM:INT",
            "--rewrite",
            "28:SIGURG",
            "--rewrite",
            "sigusr1:0",
        ],
        &["--exit-on", "INT", "--child", "plain"],
    );
    r.send(libc::SIGWINCH);
    r.wait_for(libc::SIGURG, 1, "WINCH rewritten to URG");
    r.send(libc::SIGUSR1);
    r.send(libc::SIGUSR2);
    r.wait_for(libc::SIGUSR2, 1, "the sentinel after the dropped USR1");
    r.send(libc::SIGTERM);
    let st = r.exit(&mut s, T);
    assert_eq!(st.code(), Some(0), "{}", r.stderr());
    assert_eq!(
        received(&r.rec),
        vec![
            (libc::SIGURG, r.pid),
            (libc::SIGUSR2, r.pid),
            (libc::SIGINT, r.pid)
        ],
        "{}",
        describe(&received(&r.rec))
    );
    // The rest gets --stop-signal, which --rewrite leaves alone.
    assert_eq!(
        received(&r.child_rec("plain")),
        vec![(libc::SIGTERM, r.pid)]
    );
    assert!(s.alive().is_empty(), "{:?}", s.alive());

    // The same from the environment.
    let r = Run::start_env(
        &mut s,
        "env",
        &["-q"],
        &[("OCWRAP_REWRITE", "USR1:0,SIGHUP:28")],
        &["--exit-on", "TERM"],
    );
    r.send(libc::SIGUSR1);
    r.send(libc::SIGUSR2);
    r.wait_for(libc::SIGUSR2, 1, "the sentinel after the dropped USR1");
    r.send(libc::SIGHUP);
    r.wait_for(libc::SIGWINCH, 1, "HUP rewritten to WINCH");
    assert!(is_alive(r.pid), "the rewritten HUP started a teardown");
    r.send(libc::SIGTERM);
    assert_eq!(r.exit(&mut s, T).code(), Some(0), "{}", r.stderr());
    assert_eq!(
        received(&r.rec),
        vec![
            (libc::SIGUSR2, r.pid),
            (libc::SIGWINCH, r.pid),
            (libc::SIGTERM, r.pid)
        ]
    );
}

#[test]
fn remap_exit_replaces_cmds_status_but_not_ocwraps_own_125() {
    let s = Scene::new("remap");
    let status = |args: &[&str], env: Option<&str>| {
        let mut c = ocwrap(&s, args);
        if let Some(e) = env {
            c.env("OCWRAP_REMAP_EXIT", e);
        }
        let (o, _) = run_output(c, T);
        (o.status.code(), stderr(&o))
    };
    let remap = ["-q", "--remap-exit", "143:0", "--remap-exit", "3:4"];
    let with = |cmd: &str| {
        let mut a = remap.to_vec();
        a.extend(["--", "sh", "-c", cmd]);
        status(&a, None)
    };
    let (code, err) = with("kill -TERM $$");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(with("exit 3").0, Some(4));
    assert_eq!(with("exit 5").0, Some(5));
    assert_eq!(
        status(&["-q", "--", "sh", "-c", "exit 3"], Some("3:0,143:7")).0,
        Some(0)
    );
    assert_eq!(
        status(
            &["-q", "--", "sh", "-c", "kill -TERM $$"],
            Some("3:0,143:7")
        )
        .0,
        Some(7)
    );
    // CMD's own 125 is CMD's status like any other (tini's -e test too).
    assert_eq!(
        status(
            &["-q", "--remap-exit", "125:0", "--", "sh", "-c", "exit 125"],
            None
        )
        .0,
        Some(0)
    );
    // ocwrap's own failure (here bad usage) is never remapped.
    let (code, err) = status(
        &["--remap-exit", "125:0", "--grace", "soon", "--", "true"],
        None,
    );
    assert_eq!(code, Some(125), "{err}");
    assert!(err.contains("invalid duration"), "{err}");
}

#[test]
fn remap_exit_applies_to_a_stop_by_signal() {
    let mut s = Scene::new("remapsig");
    let ready = s.path("ready");
    let mut c = ocwrap(
        &s,
        &[
            "-q",
            "--remap-exit",
            "143:0",
            "--",
            "sh",
            "-c",
            &format!("touch {}; exec sleep 1000", ready.display()),
        ],
    );
    let err = s.path("stderr");
    c.stderr(std::fs::File::create(&err).unwrap());
    let pid = s.spawn(c);
    assert!(wait_until(T, || ready.exists() || !is_alive(pid as i32)));
    if !ready.exists() {
        panic!(
            "ocwrap exited at once ({:?}): {}",
            s.wait(pid, T),
            std::fs::read_to_string(&err).unwrap_or_default()
        );
    }
    kill_pid(pid as i32, libc::SIGTERM);
    let st = s.wait(pid, T).expect("no exit");
    assert_eq!(st.code(), Some(0), "{st}");
}

/// A script that starts a background job and exits 3; the job writes
/// `done` when it finishes normally, after about a second.
fn job_script(s: &Scene) -> (String, PathBuf) {
    let done = s.path("done");
    (
        format!("(sleep 1; echo ok > {}) & exit 3", done.display()),
        done,
    )
}

#[test]
fn linger_lets_a_background_job_finish() {
    for via_env in [false, true] {
        let s = Scene::new("linger");
        let (script, done) = job_script(&s);
        let mut args = vec![];
        if !via_env {
            args.extend(["--linger", "30s"]);
        }
        args.extend(["--", "sh", "-c", &script]);
        let mut c = ocwrap(&s, &args);
        if via_env {
            c.env("OCWRAP_LINGER", "30s");
        }
        let (o, elapsed) = run_output(c, Duration::from_secs(60));
        assert_eq!(o.status.code(), Some(3), "env {via_env}: {}", stderr(&o));
        assert_eq!(
            std::fs::read_to_string(&done).ok().as_deref(),
            Some("ok\n"),
            "env {via_env}: the job did not finish on its own"
        );
        assert!(
            elapsed < Duration::from_secs(15),
            "env {via_env}: ocwrap waited {elapsed:?} after the tree had ended"
        );
        assert!(
            !stderr(&o).contains("ended on the stop signal"),
            "{}",
            stderr(&o)
        );
        assert!(s.alive().is_empty(), "{:?}", s.alive());
    }
}

#[test]
fn without_linger_the_job_is_ended_by_the_stop_signal() {
    let s = Scene::new("nolinger");
    let (script, done) = job_script(&s);
    let (o, _) = run_output(ocwrap(&s, &["--", "sh", "-c", &script]), T);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(s.alive().is_empty(), "{:?}", s.alive());
    // Nothing is left that could still write it.
    assert!(!done.exists(), "the job finished instead of being ended");
    assert!(
        stderr(&o).contains("ended on the stop signal"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn after_the_linger_what_is_left_is_torn_down() {
    let s = Scene::new("lingerend");
    let (o, elapsed) = run_output(
        ocwrap(
            &s,
            &["--linger", "2s", "--", "sh", "-c", "sleep 1000 & exit 3"],
        ),
        T,
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(elapsed >= Duration::from_secs(2), "no linger: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(12), "{elapsed:?}");
    assert!(
        stderr(&o).contains("1 ended on the stop signal"),
        "{}",
        stderr(&o)
    );
    assert!(s.alive().is_empty(), "{:?}", s.alive());
}

#[test]
fn a_stop_request_during_the_linger_starts_the_teardown_at_once() {
    let mut s = Scene::new("lingerstop");
    let mut c = ocwrap(
        &s,
        &["--linger", "60s", "--", "sh", "-c", "sleep 1000 & exit 3"],
    );
    c.stderr(Stdio::null());
    let pid = s.spawn(c) as i32;
    // CMD (sh) has exited once its job is re-parented to ocwrap (one look
    // at one process: two scans of the scene could straddle the fork).
    let ok = wait_until(T, || {
        find(&s, "sleep").is_some_and(|job| stat(job).is_some_and(|f| f[1] == pid.to_string()))
            || !is_alive(pid)
    });
    assert!(
        ok && is_alive(pid),
        "ocwrap did not linger: {:?}",
        s.alive()
    );
    let start = Instant::now();
    kill_pid(pid, libc::SIGTERM);
    let st = s.wait(pid as u32, T).expect("no exit");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(st.code(), Some(3));
    assert!(s.alive().is_empty(), "{:?}", s.alive());
}

// ---------------------------------------------------------------------------
// --report: which process got which signal from ocwrap.

fn last_report(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("no report");
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

fn entry(doc: &Value, pid: i32) -> &Value {
    doc["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == pid)
        .unwrap_or_else(|| panic!("no entry for {pid}: {doc}"))
}

fn signal_names(entry: &Value) -> Vec<String> {
    entry["signals"]
        .as_array()
        .unwrap_or_else(|| panic!("no \"signals\" in {entry}"))
        .iter()
        .map(|s| s["signal"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_report_lists_the_signals_ocwrap_sent_to_each_process() {
    // CMD exits by itself: it gets no SIGTERM; the rest get the stop signal
    // at once, and the one that ignores it SIGKILL at the end of the grace.
    let mut s = Scene::new("reportexit");
    let report = s.path("r.jsonl");
    let r = Run::start(
        &mut s,
        "cmd",
        &["-q", "--grace", "1s", "--report", report.to_str().unwrap()],
        &[
            "--exit-on",
            "USR1",
            "--exit-code",
            "3",
            "--child",
            "plain",
            "--child",
            "stubborn:setsid:",
        ],
    );
    r.send(libc::SIGUSR1);
    assert_eq!(r.exit(&mut s, T).code(), Some(3));
    let doc = last_report(&report);
    let cmd = entry(&doc, r.cmd());
    let names = signal_names(cmd);
    assert!(
        !names.iter().any(|n| n == "SIGTERM" || n == "SIGKILL"),
        "CMD exited by itself: {doc}"
    );
    let plain = entry(&doc, r.child("plain"));
    assert_eq!(signal_names(plain), ["SIGTERM"], "{doc}");
    assert!(
        plain["signals"][0]["after_ms"].as_u64().unwrap() < 1000,
        "{doc}"
    );
    let stubborn = entry(&doc, r.child("stubborn"));
    assert_eq!(signal_names(stubborn), ["SIGTERM", "SIGKILL"], "{doc}");
    assert!(
        stubborn["signals"][1]["after_ms"].as_u64().unwrap() >= 990,
        "{doc}"
    );
    assert_eq!(
        received(&r.child_rec("stubborn")),
        vec![(libc::SIGTERM, r.pid)]
    );

    // A stop request: CMD gets it, and only once CMD has exited (after its
    // 0.5 s drain) does the rest get the stop signal.
    let mut s = Scene::new("reportstop");
    let report = s.path("r.jsonl");
    let r = Run::start(
        &mut s,
        "cmd",
        &["-q", "--grace", "10s", "--report", report.to_str().unwrap()],
        &[
            "--exit-on",
            "TERM",
            "--drain",
            "0.5",
            "--child",
            "plain",
            "--child",
            "daemon:setsid",
        ],
    );
    r.send(libc::SIGTERM);
    assert_eq!(r.exit(&mut s, T).code(), Some(0));
    let doc = last_report(&report);
    let cmd = entry(&doc, r.cmd());
    assert_eq!(signal_names(cmd), ["SIGTERM"], "{doc}");
    assert!(
        cmd["signals"][0]["after_ms"].as_u64().unwrap() < 400,
        "{doc}"
    );
    let cmd_ended = cmd["after_ms"].as_u64().unwrap();
    for child in ["plain", "daemon"] {
        let e = entry(&doc, r.child(child));
        assert_eq!(signal_names(e), ["SIGTERM"], "{child}: {doc}");
        let at = e["signals"][0]["after_ms"].as_u64().unwrap();
        assert!(at >= cmd_ended && at >= 400, "{child} at {at} ms: {doc}");
    }

    // --forward-to group: the forwarded stop request counts for every
    // member of CMD's group.
    let mut s = Scene::new("reportgroup");
    let report = s.path("r.jsonl");
    let r = Run::start(
        &mut s,
        "cmd",
        &[
            "-q",
            "--forward-to",
            "group",
            "--report",
            report.to_str().unwrap(),
        ],
        &["--exit-on", "TERM", "--drain", "0.3", "--child", "plain"],
    );
    r.send(libc::SIGTERM);
    assert_eq!(r.exit(&mut s, T).code(), Some(0));
    let doc = last_report(&report);
    let plain = entry(&doc, r.child("plain"));
    assert_eq!(
        signal_names(plain).first().map(String::as_str),
        Some("SIGTERM"),
        "{doc}"
    );
    assert!(
        plain["signals"][0]["after_ms"].as_u64().unwrap() < 300,
        "{doc}"
    );
    assert_eq!(
        received(&r.child_rec("plain")),
        vec![(libc::SIGTERM, r.pid)]
    );
}

// ---------------------------------------------------------------------------
// Job control through a real terminal.

/// A program on a pseudo-terminal (`tests/fixtures/pty_driver.py`).
struct Pty {
    driver: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// The program's PID (the session leader).
    pid: i32,
}

impl Pty {
    fn start(s: &Scene, argv: &[&str]) -> Pty {
        let mut c = Command::new("python3");
        c.arg(fixture("pty_driver.py"))
            .args(argv)
            .env(MARK_VAR, &s.mark)
            .env("OCWRAP_STATE_DIR", s.state_dir())
            .env("TERM", "dumb")
            .env("HISTFILE", "/dev/null")
            .env_remove("OCWRAP_LOG_LEVEL")
            .env_remove("OCWRAP_LINGER")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut driver = c.spawn().unwrap();
        let stdin = driver.stdin.take().unwrap();
        let stdout = BufReader::new(driver.stdout.take().unwrap());
        let mut p = Pty {
            driver,
            stdin,
            stdout,
            pid: 0,
        };
        p.pid = p.read()["pid"].as_i64().unwrap() as i32;
        p
    }

    /// An interactive bash with job control, at its first prompt.
    fn bash(s: &Scene) -> Pty {
        // PS1 is set by env(1): a non-interactive bash on the way (such as
        // a python3 shim) would drop it from the environment.
        let mut p = Pty::start(
            s,
            &[
                "env",
                "PS1=[rc=$?]$ ",
                "bash",
                "--norc",
                "--noprofile",
                "--noediting",
                "-i",
            ],
        );
        assert_eq!(p.prompt(), 0);
        p
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("pty driver said {line:?}"))
    }

    fn call(&mut self, cmd: Value) -> Value {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.read()
    }

    fn send(&mut self, text: &str) {
        self.call(json!({ "send": text }));
    }

    /// Waits (30 s at most) for `re` on the terminal; returns what preceded
    /// it and the match.
    fn expect(&mut self, re: &str, what: &str) -> (String, String) {
        let v = self.call(json!({"expect": re, "timeout": 30}));
        assert!(
            v["ok"].as_bool().unwrap(),
            "{what}: /{re}/ never showed on the terminal; it shows {:?}",
            v["text"]
        );
        (
            v["before"].as_str().unwrap().to_string(),
            v["text"].as_str().unwrap().to_string(),
        )
    }

    /// Waits for the shell's prompt; returns the status it shows.
    fn prompt(&mut self) -> i32 {
        let v = self.call(json!({"expect": r"\[rc=(\d+)\]\$ ", "timeout": 30}));
        assert!(
            v["ok"].as_bool().unwrap(),
            "the shell never gave its prompt back; the terminal shows {:?}",
            v["text"]
        );
        v["groups"][0].as_str().unwrap().parse().unwrap()
    }

    fn run(&mut self, line: &str) -> (String, i32) {
        self.send(&format!("{line}\r"));
        let v = self.call(json!({"expect": r"\[rc=(\d+)\]\$ ", "timeout": 30}));
        assert!(v["ok"].as_bool().unwrap(), "{line}: {:?}", v["text"]);
        (
            v["before"].as_str().unwrap().to_string(),
            v["groups"][0].as_str().unwrap().parse().unwrap(),
        )
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        // The driver SIGKILLs its program by PID when its stdin closes; the
        // scene then ends whatever was left in that session.
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Starts `ocwrap -- ARGS` from the pty's shell and waits until CMD (named
/// `name`) runs in the terminal's foreground. Returns (ocwrap, CMD).
fn start_in_foreground(s: &Scene, p: &mut Pty, args: &str, name: &str) -> (i32, i32) {
    p.send(&format!("{} -- {args}\r", bin()));
    let mut found = (0, 0);
    let ok = wait_until(T, || {
        if let (Some(o), Some(c)) = (find(s, "ocwrap"), find(s, name)) {
            found = (o, c);
            return tpgid(c) == pgrp(c) && pgrp(c) == c;
        }
        false
    });
    assert!(ok, "{name} never ran in the foreground: {:?}", s.alive());
    found
}

fn wait_state(pid: i32, stopped: bool, what: &str) {
    let ok = wait_until(T, || (state(pid) == 'T') == stopped);
    assert!(ok, "{what} ({pid}) is in state {}", state(pid));
}

#[test]
fn ctrl_z_jobs_bg_fg_and_ctrl_c_in_an_interactive_bash() {
    let s = Scene::new("jobctl");
    let mut p = Pty::bash(&s);
    let shell = p.pid;
    let (ocw, cmd) = start_in_foreground(&s, &mut p, "sleep 1000", "sleep");
    let ctrl_z = |p: &mut Pty, when: &str| {
        p.send("\x1a");
        p.expect(r"Stopped[^\n]*ocwrap -- sleep 1000", when);
        p.prompt();
        wait_state(cmd, true, &format!("CMD after {when}"));
        wait_state(ocw, true, &format!("ocwrap after {when}"));
        assert_eq!(
            tpgid(shell),
            pgrp(shell),
            "{when}: the shell has its terminal"
        );
    };

    ctrl_z(&mut p, "Ctrl-Z");
    let (jobs, rc) = p.run("jobs");
    assert_eq!(rc, 0);
    assert!(
        line_has_in_order(&jobs, "[1]+", "Stopped", "ocwrap -- sleep 1000"),
        "jobs: {jobs:?}"
    );

    // fg continues the stopped job: ocwrap hands the terminal to CMD again.
    p.send("fg\r");
    p.expect(r"ocwrap -- sleep 1000\n", "fg");
    assert!(
        wait_until(T, || tpgid(cmd) == pgrp(cmd)),
        "after fg, the terminal's foreground is {} (shell {}, ocwrap {ocw}, CMD {cmd})",
        tpgid(cmd),
        pgrp(shell)
    );
    wait_state(cmd, false, "CMD after fg");
    wait_state(ocw, false, "ocwrap after fg");

    ctrl_z(&mut p, "the second Ctrl-Z");
    let (bg, _) = p.run("bg");
    assert!(bg.contains("ocwrap -- sleep 1000 &"), "bg: {bg:?}");
    wait_state(ocw, false, "ocwrap after bg");
    wait_state(cmd, false, "CMD after bg");
    // ocwrap, in the background, must not have taken the terminal.
    let (echo, rc) = p.run("echo shell-$((6*7))");
    assert_eq!((echo.as_str(), rc), ("shell-42\n", 0));
    assert_eq!(
        tpgid(shell),
        pgrp(shell),
        "ocwrap grabbed the terminal on bg"
    );

    // fg of a job that is running sends no SIGCONT (bash only hands the
    // terminal to ocwrap's group), so the terminal stays ocwrap's: Ctrl-C
    // reaches ocwrap, which forwards it.
    p.send("fg\r");
    p.expect(r"ocwrap -- sleep 1000\n", "fg of the running job");
    assert!(wait_until(T, || tpgid(shell) != pgrp(shell)));
    p.send("\x03");
    assert_eq!(p.prompt(), 130, "Ctrl-C: CMD died of SIGINT");
    assert!(wait_until(T, || !is_alive(ocw) && !is_alive(cmd)));
    assert_eq!(tpgid(shell), pgrp(shell));
}

/// `jobs` shows "[1]+  Stopped    COMMAND": the three parts in order.
fn line_has_in_order(text: &str, a: &str, b: &str, c: &str) -> bool {
    text.lines().any(|l| {
        l.find(a)
            .is_some_and(|i| l[i..].find(b).is_some_and(|j| l[i + j..].contains(c)))
    })
}

#[test]
fn a_reader_stopped_in_the_background_comes_back_with_fg() {
    let s = Scene::new("jobread");
    let mut p = Pty::bash(&s);
    let (ocw, cmd) = start_in_foreground(&s, &mut p, "tr a-z A-Z", "tr");
    p.send("hello\r");
    p.expect("HELLO\n", "tr in the foreground");

    p.send("\x1a");
    p.expect(r"Stopped[^\n]*ocwrap -- tr a-z A-Z", "Ctrl-Z");
    p.prompt();
    // In the background, tr reads the terminal: SIGTTIN stops it, and
    // ocwrap stops with it.
    let (bg, _) = p.run("bg");
    assert!(bg.contains("ocwrap -- tr a-z A-Z &"), "bg: {bg:?}");
    wait_state(cmd, true, "tr reading in the background");
    wait_state(ocw, true, "ocwrap after CMD's SIGTTIN");
    let (jobs, _) = p.run("jobs");
    assert!(
        line_has_in_order(&jobs, "[1]+", "Stopped", "ocwrap -- tr a-z A-Z"),
        "jobs: {jobs:?}"
    );

    p.send("fg\r");
    p.expect(r"ocwrap -- tr a-z A-Z\n", "fg");
    p.send("again\r");
    p.expect("AGAIN\n", "tr reads its terminal again after fg");
    p.send("\x03");
    assert_eq!(p.prompt(), 130);
    assert!(wait_until(T, || !is_alive(ocw) && !is_alive(cmd)));
}

#[test]
fn tstp_sent_to_ocwrap_stops_it_and_cmd_like_ctrl_z() {
    let s = Scene::new("jobkill");
    let mut p = Pty::bash(&s);
    let shell = p.pid;
    let (ocw, cmd) = start_in_foreground(&s, &mut p, "sleep 1000", "sleep");
    kill_pid(ocw, libc::SIGTSTP);
    p.expect(r"Stopped[^\n]*ocwrap -- sleep 1000", "kill -TSTP ocwrap");
    p.prompt();
    wait_state(cmd, true, "CMD");
    wait_state(ocw, true, "ocwrap");
    assert_eq!(tpgid(shell), pgrp(shell));
    p.send("fg\r");
    p.expect(r"ocwrap -- sleep 1000\n", "fg");
    assert!(wait_until(T, || tpgid(cmd) == pgrp(cmd)));
    wait_state(cmd, false, "CMD after fg");
    p.send("\x03");
    assert_eq!(p.prompt(), 130);
    assert!(wait_until(T, || !is_alive(ocw) && !is_alive(cmd)));
}

#[test]
fn a_cmd_that_handles_tstp_itself_keeps_ocwrap_running() {
    // Like vim or less: CMD catches TSTP and decides; it does not stop, so
    // neither does ocwrap (it stops only when CMD is stopped).
    let mut s = Scene::new("handlestp");
    let r = Run::start(
        &mut s,
        "cmd",
        &["-q"],
        &["--exit-on", "TERM", "--job-control"],
    );
    for sig in [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU] {
        r.send(sig);
        r.wait_for(sig, 1, "a job-control signal CMD handles");
        // A stopped ocwrap forwards nothing: the sentinel shows it runs.
        let n = count(&r.rec, libc::SIGUSR1);
        r.send(libc::SIGUSR1);
        r.wait_for(libc::SIGUSR1, n + 1, "the sentinel");
        assert_ne!(state(r.pid), 'T', "ocwrap stopped although CMD did not");
    }
    r.send(libc::SIGTERM);
    assert_eq!(r.exit(&mut s, T).code(), Some(0), "{}", r.stderr());
    let got: Vec<i32> = received(&r.rec).iter().map(|e| e.0).collect();
    assert_eq!(
        got,
        [
            libc::SIGTSTP,
            libc::SIGUSR1,
            libc::SIGTTIN,
            libc::SIGUSR1,
            libc::SIGTTOU,
            libc::SIGUSR1,
            libc::SIGTERM
        ]
    );
}

#[test]
fn signals_ignored_at_start_stay_ignored_and_are_not_forwarded() {
    // tini's signal-configuration test, for ignored signals: whatever ran
    // ocwrap ignored SEGV, TTOU and USR2.
    let mut s = Scene::new("ignored");
    let rec = s.path("cmd");
    let py = signals_py();
    let outer = "import os,signal,sys; \
                 [signal.signal(n, signal.SIG_IGN) for n in \
                  (signal.SIGSEGV, signal.SIGTTOU, signal.SIGUSR2)]; \
                 os.execv(sys.argv[1], sys.argv[1:])";
    let mut c = Command::new("python3");
    c.args(["-c", outer, bin(), "-q", "--", "python3", &py, "record"])
        .arg(&rec)
        .args(["--child", "plain"])
        .env(MARK_VAR, &s.mark)
        .env("OCWRAP_STATE_DIR", s.state_dir());
    let r = Run::spawn(&mut s, "cmd", c, None);
    let ign = r.ready["sigign"].as_str().unwrap();
    for sig in [libc::SIGSEGV, libc::SIGTTOU, libc::SIGUSR2] {
        assert!(
            sigign_has(ign, sig),
            "CMD does not ignore {}: SigIgn {ign}",
            sig_name(sig)
        );
    }
    r.send(libc::SIGUSR2);
    r.send(libc::SIGSEGV);
    r.send(libc::SIGWINCH);
    r.wait_for(libc::SIGWINCH, 1, "the sentinel");
    assert_eq!(received(&r.rec), vec![(libc::SIGWINCH, r.pid)]);
    assert!(is_alive(r.pid));
    r.assert_untouched("plain", "after ignored signals");
    r.send(libc::SIGTERM);
    assert_eq!(r.exit(&mut s, T).code(), Some(0), "{}", r.stderr());
}

#[test]
fn tstp_ttin_and_ttou_without_a_terminal_stop_both_and_cont_resumes_both() {
    let mut s = Scene::new("suspend");
    let r = Run::start(&mut s, "cmd", &["-q"], &["--exit-on", "TERM"]);
    for (n, sig) in [libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU]
        .into_iter()
        .enumerate()
    {
        let name = sig_name(sig);
        r.send(sig);
        wait_state(r.cmd(), true, &format!("CMD after {name}"));
        wait_state(r.pid, true, &format!("ocwrap after {name}"));
        r.send(libc::SIGCONT);
        wait_state(r.pid, false, &format!("ocwrap after {name} and CONT"));
        wait_state(r.cmd(), false, &format!("CMD after {name} and CONT"));
        r.wait_for(libc::SIGCONT, n + 1, "CONT forwarded");
    }
    r.send(libc::SIGTERM);
    assert_eq!(r.exit(&mut s, T).code(), Some(0), "{}", r.stderr());
    assert!(s.alive().is_empty(), "{:?}", s.alive());
}
